import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import Foundation
import GRPCCore

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Create and run a new container from an image.")

    @Flag(name: .shortAndLong, help: "Run the container in the background and print its ID.") var detach = false
    @OptionGroup var options: ContainerOptions

    func run() async throws {
        let config: Atoll_Engine_V1_ContainerConfig
        do { config = try options.config() } catch { Self.fail(error, status: 125) }
        let detach = self.detach
        let interactive = options.interactive
        let tty = options.tty
        do {
            let code = try await GlobalOptions.withEngine { client -> Int32 in
                var request = Atoll_Engine_V1_CreateContainerRequest()
                request.config = config
                let id = try await client.containers.create(request).id
                if detach {
                    var start = Atoll_Engine_V1_ContainerRequest()
                    start.container = id
                    _ = try await client.containers.start(start)
                    Output.print(id)
                    return 0
                }
                let code =
                    try await Self.attach(client: client, container: id, start: true, stdin: interactive, tty: tty)
                    ?? 0
                // The run is over and its output written: end now, not after closing the connection
                // gracefully (a GOAWAY exchange and the event loops' shutdown, ~1.5 ms of each run).
                Foundation.exit(code)
            }
            if code != 0 { throw ExitCode(code) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            Self.fail(error, status: RunExit.status(for: error))
        }
    }

    static func fail(_ error: any Error, status: Int32) -> Never {
        FileHandle.standardErrorLine("atoll: \(Atoll.describe(error))")
        Foundation.exit(status)
    }

    /// Attaches to a container (starting it first with `start`) and answers its exit code.
    static func attach(client: EngineClient, container: String, start: Bool, stdin: Bool, tty: Bool) async throws
        -> Int32?
    {
        var header = Atoll_Engine_V1_AttachHeader()
        header.container = container
        header.stdin = stdin
        header.stdout = true
        header.stderr = true
        header.start = start
        header.waitExit = true
        if tty, let size = Terminal.size(1) ?? Terminal.size(0) {
            header.rows = size.rows
            header.columns = size.columns
        }
        var first = Atoll_Engine_V1_AttachRequest()
        first.header = header
        var close = Atoll_Engine_V1_AttachRequest()
        close.closeStdin = true
        let messages = InteractiveSession.Messages<Atoll_Engine_V1_AttachRequest>(
            header: first,
            stdin: { data in
                var request = Atoll_Engine_V1_AttachRequest()
                request.stdin = data
                return request
            }, closeStdin: close,
            resize: { rows, columns in
                var request = Atoll_Engine_V1_AttachRequest()
                request.resize.rows = rows
                request.resize.columns = columns
                return request
            })
        return try await InteractiveSession.run(messages, sendStdin: stdin, tty: tty) { producer, onResponse in
            try await client.containers.attach(requestProducer: producer, onResponse: onResponse)
        }
    }
}

struct CreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a new container.")
    @OptionGroup var options: ContainerOptions

    func run() async throws {
        let config: Atoll_Engine_V1_ContainerConfig
        do { config = try options.config() } catch { RunCommand.fail(error, status: 125) }
        do {
            let id = try await GlobalOptions.withEngine { client in
                var request = Atoll_Engine_V1_CreateContainerRequest()
                request.config = config
                return try await client.containers.create(request).id
            }
            Output.print(id)
        } catch {
            RunCommand.fail(error, status: 125)
        }
    }
}

struct StartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start stopped containers.")
    @Flag(name: .shortAndLong, help: "Attach stdout/stderr and forward signals.") var attach = false
    @Flag(name: .shortAndLong, help: "Attach the container's STDIN.") var interactive = false
    @Argument(help: "Containers.") var containers: [String]

    func run() async throws {
        guard !containers.isEmpty else { throw ValidationError("start needs at least one container") }
        if attach || interactive {
            guard containers.count == 1 else {
                throw ValidationError("you cannot start and attach multiple containers at once")
            }
            let container = containers[0]
            let stdin = interactive
            let code = try await GlobalOptions.withEngine { client -> Int32 in
                var request = Atoll_Engine_V1_ContainerRequest()
                request.container = container
                let document = try await client.containers.inspect(request).json
                let object = (try? JSONSerialization.jsonObject(with: document)) as? [String: Any]
                let tty = ((object?["Config"] as? [String: Any])?["Tty"] as? Bool) ?? false
                return try await RunCommand.attach(
                    client: client, container: container, start: true, stdin: stdin, tty: tty) ?? 0
            }
            if code != 0 { throw ExitCode(code) }
            return
        }
        try await forEachContainer(containers) { client, name in
            var request = Atoll_Engine_V1_ContainerRequest()
            request.container = name
            _ = try await client.containers.start(request)
        }
    }
}

/// Runs `body` for each container named, printing each name on success and each failure on
/// standard error; exits 1 if any failed, as Docker does.
func forEachContainer(
    _ names: [String], printNames: Bool = true,
    _ body: @escaping @Sendable (EngineClient, String) async throws -> Void
) async throws {
    var failed = false
    for name in names {
        do {
            try await GlobalOptions.withEngine { client in try await body(client, name) }
            if printNames { Output.print(name) }
        } catch {
            failed = true
            FileHandle.standardErrorLine("Error: \(Atoll.describe(error))")
        }
    }
    if failed { throw ExitCode.failure }
}
