import Foundation
import Glibc
import Testing

/// `atoll pull` against Debian's docker-registry (registry 2.8, a registry nobody here wrote)
/// and against Atoll's own registry.
@Suite(.serialized) struct PullTests {
    /// A docker-registry on a loopback port with its storage in `directory`; stopped by `stop()`.
    final class DockerRegistry {
        private(set) var port = 0
        let storage: String
        private var processHolder: Process?

        /// `auth` is the configuration's `auth:` section, if the registry is to ask for one.
        init(directory: String, auth: String = "") throws {
            storage = "\(directory)/registry-storage"
            var lastError = ""
            for _ in 0..<5 {
                let port = Int.random(in: 20000..<60000)
                let config = "\(directory)/registry-\(port).yml"
                try """
                version: 0.1
                log:
                  level: warn
                storage:
                  filesystem:
                    rootdirectory: \(storage)
                  delete:
                    enabled: true
                http:
                  addr: 127.0.0.1:\(port)
                \(auth)
                """.write(toFile: config, atomically: false, encoding: .utf8)
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
                process.arguments = ["serve", config]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                let up = DaemonFixture.eventually(10) {
                    let status = DaemonFixture.shell(
                        "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:\(port)/v2/")
                    return ["200", "401"].contains(status.stdout) || !process.isRunning
                }
                if up && process.isRunning {
                    self.port = port
                    self.processHolder = process
                    return
                }
                process.terminate()
                lastError = "docker-registry did not start on port \(port)"
            }
            throw FixtureError(lastError)
        }

        func stop() {
            processHolder?.terminate()
            processHolder?.waitUntilExit()
        }

        /// Pushes the busybox archive with skopeo; returns the manifest digest.
        func pushBusybox(as name: String) throws -> String {
            let push = DaemonFixture.shell(
                "skopeo copy -q --dest-tls-verify=false docker-archive:\(BusyboxArchive.path) docker://127.0.0.1:\(port)/\(name)"
            )
            guard push.status == 0 else { throw FixtureError("skopeo push failed: \(push.stderr)") }
            let inspect = DaemonFixture.shell(
                "skopeo inspect --tls-verify=false --format '{{.Digest}}' docker://127.0.0.1:\(port)/\(name)")
            return inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    @Test func pullFromRegistry28RunsAndKeepsTheDigest() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let registry = try DockerRegistry(directory: daemon.directory)
        defer { registry.stop() }
        let digest = try registry.pushBusybox(as: "library/busybox:1")
        let name = "127.0.0.1:\(registry.port)/library/busybox:1"

        let pull = daemon.atoll(["pull", name])
        #expect(pull.status == 0, "\(pull.stderr)")
        #expect(pull.stdout.contains(": Pull complete\n"), "\(pull.stdout)")
        #expect(pull.stdout.contains("Digest: \(digest)\n"), "the manifest keeps its digest: \(pull.stdout)")
        #expect(pull.stdout.hasSuffix("Status: Downloaded newer image for \(name)\n\(name)\n"))
        #expect(daemon.atoll(["run", "--rm", name, "echo", "pulled"]).stdout == "pulled\n")

        let again = daemon.atoll(["pull", name])
        #expect(again.stdout.contains(": Already exists\n"), "\(again.stdout)")
        #expect(again.stdout.contains("Status: Image is up to date for \(name)"))
        let byDigest = daemon.atoll(["pull", "-q", "127.0.0.1:\(registry.port)/library/busybox@\(digest)"])
        #expect(byDigest.status == 0, "\(byDigest.stderr)")

        let missing = daemon.atoll(["pull", "127.0.0.1:\(registry.port)/library/busybox:nope"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("HTTP 404"), "\(missing.stderr)")
        let unreachable = daemon.atoll(["pull", "127.0.0.1:1/library/busybox:1"])
        #expect(unreachable.status == 1)
        #expect(unreachable.stderr.hasPrefix("Error: cannot reach the registry 127.0.0.1:1"), "\(unreachable.stderr)")
    }

    @Test func mirrorsAreTriedFirstForAnyRegistryAndTheRegistryItselfWhenTheyFail() throws {
        let scratch = "/tmp/atoll-it-mirror-\(UUID().uuidString.prefix(6).lowercased())"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let origin = try DockerRegistry(directory: scratch)
        defer { origin.stop() }
        let mirror = try DockerRegistry(directory: scratch)
        defer { mirror.stop() }
        let daemon = try DaemonFixture(extraArguments: [
            "--registry-mirror", "127.0.0.1:\(origin.port)=127.0.0.1:1",
            "--registry-mirror", "127.0.0.1:\(origin.port)=http://127.0.0.1:\(mirror.port)",
        ])
        defer { daemon.shutdown() }

        // Only the mirror has it: the pull is served from there under the origin's name.
        let digest = try mirror.pushBusybox(as: "team/bb:1")
        let name = "127.0.0.1:\(origin.port)/team/bb:1"
        let fromMirror = daemon.atoll(["pull", name])
        #expect(fromMirror.status == 0, "\(fromMirror.stderr)")
        #expect(fromMirror.stdout.contains("Digest: \(digest)\n"), "\(fromMirror.stdout)")
        #expect(daemon.atoll(["image", "inspect", "-f", "{{.RepoTags}}", name]).stdout.contains(name))

        // Only the origin has it: the mirrors fail (one is down, one lacks it) and the origin serves.
        _ = try origin.pushBusybox(as: "team/other:1")
        let fromOrigin = daemon.atoll(["pull", "-q", "127.0.0.1:\(origin.port)/team/other:1"])
        #expect(fromOrigin.status == 0, "\(fromOrigin.stderr)")

        let bad = try DaemonFixture(extraArguments: ["--registry-mirror", "nomirror"], start: false)
        defer { bad.shutdown() }
        #expect(throws: (any Error).self) { try bad.start() }
        #expect(bad.daemonLog().contains("invalid --registry-mirror \"nomirror\""), "\(bad.daemonLog())")
        // Refused before anything on the host changed: no root, no sealed runtime.
        #expect(!FileManager.default.fileExists(atPath: bad.root))
        #expect(!FileManager.default.fileExists(atPath: "\(bad.runDirectory)/runtimes"))
    }

    @Test func aBlobThatDoesNotMatchItsDigestIsRefusedAndNothingIsRecorded() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let registry = try DockerRegistry(directory: daemon.directory)
        defer { registry.stop() }
        _ = try registry.pushBusybox(as: "bad/busybox:1")
        // Flip bytes in the middle of the layer in the registry's own storage (same size).
        let corrupt = DaemonFixture.shell(
            """
            set -e
            data=$(ls -S $(find \(registry.storage) -path '*/blobs/sha256/*/data') | head -1)
            size=$(stat -c %s "$data")
            printf 'CORRUPTION' | dd of="$data" bs=1 seek=$((size / 2)) conv=notrunc status=none
            """)
        #expect(corrupt.status == 0, "\(corrupt.stderr)")
        let pull = daemon.atoll(["pull", "127.0.0.1:\(registry.port)/bad/busybox:1"])
        #expect(pull.status == 1)
        #expect(pull.stderr.contains("digest mismatch"), "\(pull.stderr)")
        #expect(daemon.atoll(["images", "-q"]).stdout == "")
        let ingest = (try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.root)/content/ingest")) ?? []
        #expect(ingest.isEmpty, "\(ingest)")
        // Only the config (fetched whole) may remain, to be collected; never the bad layer.
        #expect(daemon.blobs().count <= 1, "\(daemon.blobs())")
    }

    @Test func anIndexResolvesToTheAskedPlatform() throws {
        let (daemon, port) = try RegistryTests.registryDaemon()
        defer { daemon.shutdown() }
        let registry = "127.0.0.1:\(port)"
        let push = DaemonFixture.shell(
            "skopeo copy -q --dest-tls-verify=false docker-archive:\(BusyboxArchive.path) docker://\(registry)/multi/bb:amd"
        )
        #expect(push.status == 0, "\(push.stderr)")
        // An arm64 twin (its own config, the same layer) and an index of both.
        let script = """
            import hashlib, json, urllib.request
            base = "http://\(registry)/v2/multi/bb"
            def call(method, path, body=None, headers={}):
                request = urllib.request.Request(base + path, data=body, method=method, headers=headers)
                with urllib.request.urlopen(request) as response:
                    return response.read(), dict(response.headers)
            amd, headers = call("GET", "/manifests/amd", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
            manifest = json.loads(amd)
            config = json.loads(call("GET", "/blobs/" + manifest["config"]["digest"])[0])
            config["architecture"] = "arm64"
            config["variant"] = "v8"
            arm_config = json.dumps(config).encode()
            arm_config_digest = "sha256:" + hashlib.sha256(arm_config).hexdigest()
            call("POST", "/blobs/uploads/?digest=" + arm_config_digest, arm_config)
            manifest["config"]["digest"] = arm_config_digest
            manifest["config"]["size"] = len(arm_config)
            arm = json.dumps(manifest).encode()
            kind = manifest["mediaType"]
            call("PUT", "/manifests/arm", arm, {"Content-Type": kind})
            index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
                {"mediaType": kind, "digest": "sha256:" + hashlib.sha256(amd).hexdigest(), "size": len(amd), "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": kind, "digest": "sha256:" + hashlib.sha256(arm).hexdigest(), "size": len(arm), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            ]}).encode()
            call("PUT", "/manifests/both", index, {"Content-Type": "application/vnd.oci.image.index.v1+json"})
            print(arm_config_digest)
            """
        let scriptPath = "\(daemon.directory)/index.py"
        try script.write(toFile: scriptPath, atomically: false, encoding: .utf8)
        let made = DaemonFixture.shell("python3 \(scriptPath)")
        #expect(made.status == 0, "\(made.stderr)")
        let armConfig = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let arm = daemon.atoll(["pull", "-q", "--platform", "linux/arm64/v8", "\(registry)/multi/bb:both"])
        #expect(arm.status == 0, "\(arm.stderr)")
        #expect(
            daemon.atoll(["image", "inspect", "-f", "{{.Id}}", "\(registry)/multi/bb:both"]).stdout == "\(armConfig)\n")
        let host = daemon.atoll(["pull", "-q", "\(registry)/multi/bb:both"])
        #expect(host.status == 0, "\(host.stderr)")
        let architecture = daemon.atoll(["image", "inspect", "-f", "{{.Architecture}}", "\(registry)/multi/bb:both"])
        #expect(architecture.stdout == "amd64\n" || architecture.stdout == "arm64\n")
        #expect(
            daemon.atoll(["image", "inspect", "-f", "{{.Id}}", "\(registry)/multi/bb:both"]).stdout != "\(armConfig)\n"
                || architecture.stdout == "arm64\n")
        let none = daemon.atoll(["pull", "--platform", "linux/s390x", "\(registry)/multi/bb:both"])
        #expect(none.status == 1)
    }

    @Test func pushToRegistry28AndToAtollsRegistryKeepsTheDigest() throws {
        let (daemon, port) = try RegistryTests.registryDaemon()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let registry = try DockerRegistry(directory: daemon.directory)
        defer { registry.stop() }
        let local = try #require(
            daemon.atoll(["image", "inspect", "-f", "{{.Id}}", "busybox"]).stdout.split(separator: "\n").first)

        let name = "127.0.0.1:\(registry.port)/team/bb:1"
        #expect(daemon.atoll(["tag", "busybox", name]).status == 0)
        let push = daemon.atoll(["push", name])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(push.stdout.contains(": Pushed\n"), "\(push.stdout)")
        let inspect = DaemonFixture.shell("skopeo inspect --tls-verify=false --format '{{.Digest}}' docker://\(name)")
        let digest = inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(push.stdout.hasSuffix("1: digest: \(digest)\n"), "\(push.stdout) vs \(digest)")
        let again = daemon.atoll(["push", name])
        #expect(again.stdout.contains(": Layer already exists\n"), "\(again.stdout)")

        // Another repository of the same registry: the blobs are mounted, not sent again, by
        // registry 2.8 and by Atoll's own registry alike.
        let sibling = "127.0.0.1:\(registry.port)/other/bb:1"
        #expect(daemon.atoll(["tag", "busybox", sibling]).status == 0)
        let mounted = daemon.atoll(["push", sibling])
        #expect(mounted.status == 0, "\(mounted.stderr)")
        #expect(mounted.stdout.contains(": Mounted from team/bb\n"), "\(mounted.stdout)")
        #expect(!mounted.stdout.contains(": Pushed\n"), "\(mounted.stdout)")
        #expect(DaemonFixture.shell("skopeo inspect --tls-verify=false docker://\(sibling)").status == 0)
        for repository in ["first", "second"] {
            let target = "127.0.0.1:\(port)/\(repository)/bb:1"
            #expect(daemon.atoll(["tag", "busybox", target]).status == 0)
            let output = daemon.atoll(["push", target]).stdout
            #expect(output.contains(repository == "first" ? ": Pushed\n" : ": Mounted from first/bb\n"), "\(output)")
        }

        // Into Atoll's own registry, then back into another daemon: same image ID.
        let own = "127.0.0.1:\(port)/mine/bb:2"
        #expect(daemon.atoll(["tag", "busybox", own]).status == 0)
        #expect(daemon.atoll(["push", "-q", own]).status == 0)
        let other = try DaemonFixture()
        defer { other.shutdown() }
        let pulled = other.atoll(["pull", "-q", own])
        #expect(pulled.status == 0, "\(pulled.stderr)")
        #expect(other.atoll(["image", "inspect", "-f", "{{.Id}}", own]).stdout == "\(local)\n")
        #expect(other.atoll(["pull", "-q", name]).status == 0)

        let missing = daemon.atoll(["push", "127.0.0.1:\(registry.port)/nothing:here"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no such image"), "\(missing.stderr)")
    }

    /// A registry not on loopback is reached over HTTPS, its certificate checked against the
    /// system's trust store: registry 2.8 serving TLS with a self-signed certificate on "another
    /// host" is refused, with the reason, and nothing is stored.
    @Test func aRegistryOffLoopbackIsReachedOverVerifiedHTTPS() throws {
        let daemon = try DaemonFixture(isolatedNetwork: true)
        defer { daemon.shutdown() }
        let other = try NetworkTests.OtherHost(joining: daemon)
        let directory = daemon.directory
        let made = DaemonFixture.shell(
            """
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=10.213.9.2 \
              -addext subjectAltName=IP:10.213.9.2 -keyout \(directory)/tls.key -out \(directory)/tls.crt 2>&1 &&
            printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 10.213.9.2:5443\n  tls:\n    certificate: %s\n    key: %s\n' \
              \(directory)/tls-storage \(directory)/tls.crt \(directory)/tls.key > \(directory)/tls-registry.yml
            """)
        try #require(made.status == 0, "\(made.stdout)")
        // Started detached, closing every inherited descriptor (Process waits for them).
        let started = other.run(
            "( for fd in $(ls /proc/$BASHPID/fd); do [ $fd -gt 2 ] && eval \"exec $fd>&-\"; done; exec setsid docker-registry serve \(directory)/tls-registry.yml </dev/null >\(directory)/tls-registry.log 2>&1 ) & echo $! > \(directory)/tls-registry.pid"
        )
        try #require(started.status == 0, "\(started.stderr)")
        defer { _ = DaemonFixture.shell("kill $(cat \(directory)/tls-registry.pid) 2>/dev/null") }
        #expect(
            DaemonFixture.eventually(10) {
                other.run("curl -sk -o /dev/null -w '%{http_code}' https://10.213.9.2:5443/v2/").stdout == "200"
            })

        let pull = daemon.atoll(["pull", "10.213.9.2:5443/library/busybox:1"])
        #expect(pull.status == 1)
        #expect(pull.stderr.contains("cannot reach the registry 10.213.9.2:5443"), "\(pull.stderr)")
        #expect(
            pull.stderr.lowercased().contains("certificate"), "the reason is the untrusted certificate: \(pull.stderr)")
        #expect(daemon.atoll(["images", "-q"]).stdout.isEmpty)
    }
}
