import ArgumentParser
import AtollAPI
import AtollCore
import AtollOCI
import Foundation
import Glibc

struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login", abstract: "Log in to a registry.",
        discussion: """
            atolld checks the credentials against the registry (SERVER, else Docker Hub) before the
            CLI stores them in config.json under --config, $ATOLL_CONFIG or ~/.atoll, readable only
            by you; pull and push then send them to that registry.
            """)
    @Option(name: .shortAndLong, help: "Username.") var username: String?
    @Option(name: .shortAndLong, help: "Password (prefer --password-stdin).") var password: String?
    @Flag(help: "Take the password from the standard input.") var passwordStdin = false
    @Argument(help: "The registry, HOST[:PORT].") var server: String?

    func validate() throws {
        if passwordStdin && password != nil {
            throw ValidationError("--password and --password-stdin are mutually exclusive")
        }
        if passwordStdin && username == nil {
            throw ValidationError("--password-stdin needs --username")
        }
    }

    func run() async throws {
        let registry = try ImageReference.registryDomain(ofServer: server)
        let user = try username ?? Self.prompt("Username: ", echo: true)
        guard !user.isEmpty else { throw AtollError.invalidArgument("login needs a username") }
        let secret: String
        if let password {
            Output.write(
                Data("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n".utf8),
                to: .standardError)
            secret = password
        } else if passwordStdin {
            let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            secret = String(input.reversed().drop(while: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }).reversed())
        } else {
            secret = try Self.prompt("Password: ", echo: false)
        }
        guard !secret.isEmpty else { throw AtollError.invalidArgument("login needs a password") }

        var request = Atoll_Engine_V1_LoginRequest()
        request.server = registry
        request.username = user
        request.password = secret
        _ = try await GlobalOptions.withEngine { [request] client in try await client.images.login(request) }
        try CLIConfigFile().store(user, secret, for: registry)
        Output.print("Login Succeeded")
    }

    /// Asks on the terminal; without one there is nobody to ask.
    static func prompt(_ question: String, echo: Bool) throws -> String {
        guard isatty(0) == 1 else {
            throw AtollError.invalidArgument(
                "cannot ask for credentials without a terminal: use --username and --password-stdin")
        }
        Output.write(Data(question.utf8), to: .standardError)
        var saved = termios()
        let hidden = !echo && tcgetattr(0, &saved) == 0
        if hidden {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(0, TCSANOW, &quiet)
        }
        defer {
            if hidden {
                tcsetattr(0, TCSANOW, &saved)
                Output.write(Data("\n".utf8), to: .standardError)
            }
        }
        return readLine(strippingNewline: true) ?? ""
    }
}

struct LogoutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logout", abstract: "Log out from a registry (forget its stored credentials).")
    @Argument(help: "The registry, HOST[:PORT]; Docker Hub when left out.") var server: String?

    func run() throws {
        let registry = try ImageReference.registryDomain(ofServer: server)
        if try CLIConfigFile().remove(registry) {
            Output.print("Removing login credentials for \(registry)")
        } else {
            Output.print("Not logged in to \(registry)")
        }
    }
}

extension CLIConfigFile {
    /// The stored credentials for the registry `reference` names, for a pull or push request
    /// (none for a reference that does not parse: the daemon reports that).
    static func credentials(forImage reference: String) throws -> (username: String, password: String)? {
        guard let domain = try? ImageReference(parsing: reference).domain else { return nil }
        return try CLIConfigFile().credentials(for: domain)
    }
}
