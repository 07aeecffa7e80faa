import Foundation
import Glibc
import Testing

/// `atoll login` and `logout`, and pulls and pushes that need them, against registry 2.8 asking
/// for basic credentials (htpasswd) and for bearer tokens from a token service.
@Suite(.serialized) struct RegistryAuthTests {
    static let user = "alice"
    static let password = "s3cret-pa55"

    /// A token service (Fixtures/token-server.py) granting whatever scopes valid credentials ask
    /// for, signing with a key whose certificate registry 2.8 trusts.
    final class TokenServer {
        let port: Int
        let certificate: String
        let log: String
        private let process: Process

        init(directory: String) throws {
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Fixtures/token-server.py").path
            certificate = "\(directory)/token-signer.pem"
            log = "\(directory)/token-requests.log"
            for _ in 0..<5 {
                let port = Int.random(in: 20000..<60000)
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
                process.arguments = [
                    script, "\(port)", certificate, log, "\(RegistryAuthTests.user):\(RegistryAuthTests.password)",
                    "atoll-test-issuer",
                ]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                let up = DaemonFixture.eventually(10) {
                    !process.isRunning
                        || DaemonFixture.shell("curl -s -o /dev/null http://127.0.0.1:\(port)/token").status == 0
                }
                if up && process.isRunning && FileManager.default.fileExists(atPath: certificate) {
                    self.port = port
                    self.process = process
                    return
                }
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            throw FixtureError("the token server did not start")
        }

        /// registry 2.8's `auth:` section for this service.
        var registryAuth: String {
            """
            auth:
              token:
                realm: http://127.0.0.1:\(port)/token
                service: atoll-test-registry
                issuer: atoll-test-issuer
                rootcertbundle: \(certificate)
            """
        }

        /// The scopes of each token request so far, one line per request.
        var requests: [String] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        /// SIGKILL: a child of the test process starts with SIGTERM blocked (Foundation's Process
        /// passes on the mask of the thread that spawns it), and Python keeps that mask.
        func stop() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Writes `text` to a file for a command's standard input.
    static func stdinFile(_ daemon: DaemonFixture, _ text: String) throws -> String {
        let path = "\(daemon.directory)/stdin-\(UInt32.random(in: 0...UInt32.max))"
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    static func login(_ daemon: DaemonFixture, _ server: String, password: String = RegistryAuthTests.password)
        throws -> DaemonFixture.Result
    {
        daemon.atoll(
            ["login", "-u", user, "--password-stdin", server], stdin: try stdinFile(daemon, password + "\n"))
    }

    @Test func basicCredentialsAreCheckedStoredPrivatelyUsedAndForgotten() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let htpasswd = "\(daemon.directory)/htpasswd"
        let hash = DaemonFixture.shell("htpasswd -Bbn \(Self.user) \(Self.password) > \(htpasswd)")
        try #require(hash.status == 0, "\(hash.stderr)")
        let registry = try PullTests.DockerRegistry(
            directory: daemon.directory,
            auth: """
                auth:
                  htpasswd:
                    realm: atoll-test
                    path: \(htpasswd)
                """)
        defer { registry.stop() }
        let server = "127.0.0.1:\(registry.port)"
        let name = "\(server)/team/bb:1"
        #expect(daemon.atoll(["tag", "busybox", name]).status == 0)
        let config = "\(daemon.cliConfig)/config.json"

        let anonymous = daemon.atoll(["push", name])
        #expect(anonymous.status == 1)
        #expect(anonymous.stderr.contains("wants a login: run atoll login \(server)"), "\(anonymous.stderr)")

        let wrong = try Self.login(daemon, server, password: "not-it")
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("wrong username or password"), "\(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: config), "a refused login stores nothing")

        let login = try Self.login(daemon, "http://\(server)/")
        #expect(login.status == 0, "\(login.stderr)")
        #expect(login.stdout == "Login Succeeded\n")
        let file = try FileManager.default.attributesOfItem(atPath: config)
        #expect((file[.posixPermissions] as? Int) == 0o600)
        let directory = try FileManager.default.attributesOfItem(atPath: daemon.cliConfig)
        #expect((directory[.posixPermissions] as? Int) == 0o700)
        let stored = try String(contentsOfFile: config, encoding: .utf8)
        #expect(stored.contains("\"\(server)\""), "stored under the registry's domain: \(stored)")
        #expect(!stored.contains(Self.password))

        let push = daemon.atoll(["push", name])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(push.stdout.contains(": Pushed\n"), "\(push.stdout)")
        #expect(daemon.atoll(["rmi", name]).status == 0)
        let pull = daemon.atoll(["pull", "-q", name])
        #expect(pull.status == 0, "\(pull.stderr)")
        // A build pulls a base image that is not here, with the same login.
        #expect(daemon.atoll(["rmi", name]).status == 0)
        let context = try BuildTests.context(
            daemon, ["Dockerfile": "FROM \(name)\nRUN echo pulled > /p\n"], name: "private-base")
        let build = daemon.atoll(["build", "-q", "-t", "from-private", context])
        #expect(build.status == 0, "\(build.stderr)")

        let onCommandLine = daemon.atoll(["login", "-u", Self.user, "-p", Self.password, server])
        #expect(onCommandLine.status == 0, "\(onCommandLine.stderr)")
        #expect(onCommandLine.stderr.contains("--password-stdin"), "a warning: \(onCommandLine.stderr)")

        let logout = daemon.atoll(["logout", server])
        #expect(logout.stdout == "Removing login credentials for \(server)\n", "\(logout.stdout)")
        #expect(daemon.atoll(["logout", server]).stdout == "Not logged in to \(server)\n")
        #expect(!(try String(contentsOfFile: config, encoding: .utf8)).contains(server))
        let afterwards = daemon.atoll(["pull", name])
        #expect(afterwards.status == 1)
        #expect(afterwards.stderr.contains("atoll login"), "\(afterwards.stderr)")

        let noTerminal = daemon.atoll(["login", server], stdin: "/dev/null")
        #expect(noTerminal.status == 1)
        #expect(noTerminal.stderr.contains("without a terminal"), "\(noTerminal.stderr)")
    }

    @Test func bearerTokensCoverPullsPushesAndCrossRepositoryMounts() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let tokens = try TokenServer(directory: daemon.directory)
        defer { tokens.stop() }
        let registry = try PullTests.DockerRegistry(directory: daemon.directory, auth: tokens.registryAuth)
        defer { registry.stop() }
        let server = "127.0.0.1:\(registry.port)"

        let first = "\(server)/team/bb:1"
        #expect(daemon.atoll(["tag", "busybox", first]).status == 0)
        let anonymous = daemon.atoll(["push", first])
        #expect(anonymous.status == 1)
        #expect(anonymous.stderr.contains("refused access (HTTP 401)"), "\(anonymous.stderr)")

        let wrong = try Self.login(daemon, server, password: "not-it")
        #expect(wrong.status == 1)
        #expect(try Self.login(daemon, server).status == 0)

        let push = daemon.atoll(["push", first])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(push.stdout.contains(": Pushed\n"), "\(push.stdout)")

        // The second repository's token also covers pulling from the first, so its blobs are
        // mounted from there rather than sent again.
        let second = "\(server)/other/bb:1"
        #expect(daemon.atoll(["tag", "busybox", second]).status == 0)
        let mounted = daemon.atoll(["push", second])
        #expect(mounted.status == 0, "\(mounted.stderr)")
        #expect(mounted.stdout.contains(": Mounted from team/bb\n"), "\(mounted.stdout)")
        #expect(!mounted.stdout.contains(": Pushed\n"), "\(mounted.stdout)")
        #expect(
            tokens.requests.contains {
                $0.contains("repository:other/bb:pull,push") && $0.contains("repository:team/bb:pull")
            },
            "\(tokens.requests)")

        #expect(daemon.atoll(["rmi", second]).status == 0)
        let pull = daemon.atoll(["pull", "-q", second])
        #expect(pull.status == 0, "\(pull.stderr)")
        let skopeo = DaemonFixture.shell(
            "skopeo inspect --tls-verify=false --creds \(Self.user):\(Self.password) docker://\(second)")
        #expect(skopeo.status == 0, "a registry client nobody here wrote sees the pushed image: \(skopeo.stderr)")
    }
}
