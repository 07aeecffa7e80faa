import ArgumentParser
import AtollClient
import AtollCore
import Foundation
import GRPCCore

/// The `atoll` command: Docker's nouns and verbs against atolld.
public struct Atoll: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "atoll",
        abstract: "Control Atoll: containers, images, volumes and storage on a host running atolld.",
        discussion: """
            Global options come before the command: atoll [-H unix:///path | -H tcp://MANAGER:PORT --tls-dir DIR | --context NAME] [--config DIR] COMMAND.
            ATOLL_HOST sets the default host (unix:///run/atoll/atolld.sock).
            """,
        version: AtollVersion.version,
        subcommands: [
            VersionCommand.self, InfoCommand.self, ImagesCommand.self, ImageCommand.self, ImportCommand.self,
            LoadCommand.self, SaveCommand.self, TagCommand.self, RmiCommand.self, PullCommand.self, PushCommand.self,
            LoginCommand.self, LogoutCommand.self,
            SystemCommand.self,
            RunCommand.self, CreateCommand.self, StartCommand.self, StopCommand.self, RestartCommand.self,
            KillCommand.self, PauseCommand.self, UnpauseCommand.self, RmCommand.self, PsCommand.self,
            InspectCommand.self, PortCommand.self, LogsCommand.self, WaitCommand.self, ExecCommand.self,
            AttachCommand.self,
            TopCommand.self, StatsCommand.self, RenameCommand.self, CpCommand.self, ContainerCommand.self,
            VolumeCommand.self,
            NetworkCommand.self, ClusterCommand.self, NodeCommand.self, ContextCommand.self,
            BuildCommand.self, BuilderCommand.self, HistoryCommand.self,
        ])

    public init() {}

    /// Runs the CLI: global options first, then the command; any failure is one line on
    /// standard error and a non-zero exit status.
    public static func run(arguments: [String]) async -> Never {
        // A closed pipe is an error to report, not a reason to die silently.
        signal(SIGPIPE, SIG_IGN)
        var arguments = arguments
        do {
            try GlobalOptions.extract(from: &arguments)
        } catch {
            fail(error)
        }
        let command: any ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            exit(withError: error)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
        } catch let exitCode as ExitCode {
            Foundation.exit(exitCode.rawValue)
        } catch let error as CleanExit {
            exit(withError: error)
        } catch {
            // `--help` and `atoll help X` parse into ArgumentParser's help command, whose run
            // throws its (internal) CommandError for exit(withError:) to print the help.
            if String(reflecting: type(of: error)) == "ArgumentParser.CommandError" { exit(withError: error) }
            fail(error)
        }
        Foundation.exit(0)
    }

    static func fail(_ error: any Error) -> Never {
        Output.write(Data("Error: \(describe(error))\n".utf8), to: .standardError)
        Foundation.exit(1)
    }

    /// One readable line for any error the CLI can meet.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as RPCError:
            if error.code == .unavailable,
                error.metadata[stringValues: "atoll-error"].first(where: { _ in true }) == nil
            {
                return "lost the connection to atolld at \(GlobalOptions.host): \(error.message)"
            }
            return error.message
        case let error as AtollError: return error.description
        case let error as ValidationError: return error.message
        default: return String(describing: error)
        }
    }
}

/// Options that precede the command, as Docker's do.
enum GlobalOptions {
    /// The host from -H/--host or ATOLL_HOST, else the context's.
    static var host: String {
        if let host = ProcessInfo.processInfo.environment["ATOLL_HOST"], !host.isEmpty { return host }
        return (try? AtollContext.selected().host) ?? EngineEndpoint.defaultHost
    }

    /// Removes leading global options from `arguments`; -H is stored as ATOLL_HOST, --tls-dir as ATOLL_TLS_DIR
    /// and --config as ATOLL_CONFIG for the process.
    static func extract(from arguments: inout [String]) throws {
        while let first = arguments.first {
            if first == "-H" || first == "--host" {
                guard arguments.count > 1 else {
                    throw AtollError.invalidArgument("\(first) needs a value: unix:///path")
                }
                setenv("ATOLL_HOST", arguments[1], 1)
                arguments.removeFirst(2)
            } else if first.hasPrefix("--host=") || (first.hasPrefix("-H") && first.count > 2) {
                let value = first.hasPrefix("--host=") ? String(first.dropFirst(7)) : String(first.dropFirst(2))
                setenv("ATOLL_HOST", value, 1)
                arguments.removeFirst()
            } else if first == "--context" || first == "-c" {
                guard arguments.count > 1 else { throw AtollError.invalidArgument("\(first) needs a context name") }
                setenv("ATOLL_CONTEXT", arguments[1], 1)
                arguments.removeFirst(2)
            } else if first.hasPrefix("--context=") {
                setenv("ATOLL_CONTEXT", String(first.dropFirst(10)), 1)
                arguments.removeFirst()
            } else if first == "--tls-dir" {
                guard arguments.count > 1 else { throw AtollError.invalidArgument("--tls-dir needs a directory") }
                setenv("ATOLL_TLS_DIR", arguments[1], 1)
                arguments.removeFirst(2)
            } else if first.hasPrefix("--tls-dir=") {
                setenv("ATOLL_TLS_DIR", String(first.dropFirst(10)), 1)
                arguments.removeFirst()
            } else if first == "--config" {
                guard arguments.count > 1 else { throw AtollError.invalidArgument("--config needs a directory") }
                setenv("ATOLL_CONFIG", arguments[1], 1)
                arguments.removeFirst(2)
            } else if first.hasPrefix("--config=") {
                setenv("ATOLL_CONFIG", String(first.dropFirst(9)), 1)
                arguments.removeFirst()
            } else {
                return
            }
        }
    }

    /// Connects to the chosen engine and runs `body`.
    static func withEngine<T: Sendable>(_ body: @Sendable (EngineClient) async throws -> T) async throws -> T {
        var tlsDirectory = ProcessInfo.processInfo.environment["ATOLL_TLS_DIR"].flatMap { $0.isEmpty ? nil : $0 }
        if tlsDirectory == nil, ProcessInfo.processInfo.environment["ATOLL_HOST"]?.isEmpty ?? true {
            tlsDirectory = try AtollContext.selected().tlsDirectory
        }
        return try await EngineClient.withConnection(
            to: try EngineEndpoint(parsing: host, tlsDirectory: tlsDirectory), body)
    }
}
