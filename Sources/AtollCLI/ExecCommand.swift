import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import Foundation

struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Execute a command in a running container.")
    @Flag(name: .shortAndLong, help: "Detached mode: run the command in the background.") var detach = false
    @Flag(name: .shortAndLong, help: "Keep STDIN open even if not attached.") var interactive = false
    @Flag(name: .shortAndLong, help: "Allocate a pseudo-TTY.") var tty = false
    @Option(name: .shortAndLong, help: "Set environment variables.") var env: [String] = []
    @Option(name: .customLong("env-file"), help: "Read environment variables from a file.") var envFile: [String] = []
    @Option(name: .shortAndLong, help: "Username or UID (format: name|uid[:group|gid]).") var user: String?
    @Option(name: .shortAndLong, help: "Working directory inside the container.") var workdir: String?
    @Flag(name: .long, help: "Give extended privileges to the command.") var privileged = false
    @Argument(help: "The container.") var container: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var command: [String] = []

    func run() async throws {
        guard !command.isEmpty else { throw ValidationError("exec needs a command") }
        var header = Atoll_Engine_V1_ExecHeader()
        header.container = container
        header.cmd = command
        header.env = try ContainerOptions.environment(files: envFile, flags: env)
        header.user = user ?? ""
        header.workdir = workdir ?? ""
        header.tty = tty
        header.stdin = interactive && !detach
        header.detach = detach
        header.privileged = privileged
        if tty, let size = Terminal.size(1) ?? Terminal.size(0) {
            header.rows = size.rows
            header.columns = size.columns
        }
        var first = Atoll_Engine_V1_ExecRequest()
        first.header = header
        var close = Atoll_Engine_V1_ExecRequest()
        close.closeStdin = true
        let messages = InteractiveSession.Messages<Atoll_Engine_V1_ExecRequest>(
            header: first,
            stdin: { data in
                var request = Atoll_Engine_V1_ExecRequest()
                request.stdin = data
                return request
            }, closeStdin: close,
            resize: { rows, columns in
                var request = Atoll_Engine_V1_ExecRequest()
                request.resize.rows = rows
                request.resize.columns = columns
                return request
            })
        let sendStdin = header.stdin
        let tty = self.tty
        do {
            let code = try await GlobalOptions.withEngine { client in
                try await InteractiveSession.run(messages, sendStdin: sendStdin, tty: tty) { producer, onResponse in
                    try await client.containers.exec(requestProducer: producer, onResponse: onResponse)
                }
            }
            if let code, code != 0 { throw ExitCode(code) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            RunCommand.fail(error, status: RunExit.status(for: error))
        }
    }
}

struct AttachCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Attach local standard input, output, and error streams to a running container.")
    @Flag(name: .customLong("no-stdin"), help: "Do not attach STDIN.") var noStdin = false
    @Argument(help: "The container.") var container: String

    func run() async throws {
        let container = self.container
        let noStdin = self.noStdin
        let code = try await GlobalOptions.withEngine { client -> Int32 in
            var request = Atoll_Engine_V1_ContainerRequest()
            request.container = container
            let document = try await client.containers.inspect(request).json
            let config =
                ((try? JSONSerialization.jsonObject(with: document)) as? [String: Any])?["Config"] as? [String: Any]
            let tty = (config?["Tty"] as? Bool) ?? false
            let stdin = !noStdin && ((config?["OpenStdin"] as? Bool) ?? false)
            return try await RunCommand.attach(
                client: client, container: container, start: false, stdin: stdin, tty: tty)
                ?? 0
        }
        if code != 0 { throw ExitCode(code) }
    }
}

struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top", abstract: "Display the running processes of a container.")
    @Argument(help: "The container.") var container: String
    @Argument(parsing: .captureForPassthrough, help: "ps options.") var psArguments: [String] = []

    func run() async throws {
        var request = Atoll_Engine_V1_TopRequest()
        request.container = container
        request.psArgs = psArguments
        let response = try await GlobalOptions.withEngine { [request] in try await $0.containers.top(request) }
        Output.table(response.titles, response.processes.map(\.fields))
    }
}

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Display a live stream of container resource usage statistics.")
    @Flag(name: .customLong("no-stream"), help: "Print the first result only.") var noStream = false
    @Option(help: "Format: table, json or a template.") var format: String?
    @Argument(help: "Containers (default: all running).") var containers: [String] = []

    func run() async throws {
        var request = Atoll_Engine_V1_StatsRequest()
        request.containers = containers
        request.stream = !noStream
        let format = self.format
        let noStream = self.noStream
        try await GlobalOptions.withEngine { [request] client in
            try await client.containers.stats(request) { response in
                var previous: [String: Atoll_Engine_V1_ContainerStats] = [:]
                var batch: [[String: String]] = []
                var seen = Set<String>()
                for try await sample in response.messages {
                    if seen.contains(sample.id) {
                        Self.render(batch, format: format, clear: !noStream)
                        batch = []
                        seen = []
                    }
                    seen.insert(sample.id)
                    batch.append(Self.row(sample, previous: previous[sample.id]))
                    previous[sample.id] = sample
                }
                Self.render(batch, format: format, clear: false)
            }
        }
    }

    static func row(_ sample: Atoll_Engine_V1_ContainerStats, previous: Atoll_Engine_V1_ContainerStats?) -> [String:
        String]
    {
        var cpu = 0.0
        if let previous, sample.systemCpuNs > previous.systemCpuNs {
            let used = Double(sample.cpuUsageNs &- previous.cpuUsageNs)
            let system = Double(sample.systemCpuNs - previous.systemCpuNs)
            cpu = used / system * Double(sample.onlineCpus) * 100
        }
        let memoryPercent = sample.memoryLimit > 0 ? Double(sample.memoryUsage) / Double(sample.memoryLimit) * 100 : 0
        return [
            "ID": String(sample.id.prefix(12)), "Name": sample.name, "CPUPerc": String(format: "%.2f%%", cpu),
            "MemUsage":
                "\(Output.size(Int64(sample.memoryUsage))) / \(Output.size(Int64(min(sample.memoryLimit, UInt64(Int64.max)))))",
            "MemPerc": String(format: "%.2f%%", memoryPercent),
            "BlockIO": "\(Output.size(Int64(sample.blockRead))) / \(Output.size(Int64(sample.blockWrite)))",
            "PIDs": String(sample.pids), "NetIO": "0B / 0B",
        ]
    }

    static func render(_ rows: [[String: String]], format: String?, clear: Bool) {
        guard !rows.isEmpty else { return }
        if clear { Output.write(Data("\u{1B}[2J\u{1B}[H".utf8)) }
        RowFormat(format).render(
            rows,
            columns: [
                ("ID", "CONTAINER ID"), ("Name", "NAME"), ("CPUPerc", "CPU %"), ("MemUsage", "MEM USAGE / LIMIT"),
                ("MemPerc", "MEM %"), ("NetIO", "NET I/O"), ("BlockIO", "BLOCK I/O"), ("PIDs", "PIDS"),
            ])
    }
}

struct ContainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "container", abstract: "Manage containers.",
        subcommands: [
            ContainerListCommand.self, CreateCommand.self, RunCommand.self, StartCommand.self, StopCommand.self,
            RestartCommand.self, KillCommand.self, PauseCommand.self, UnpauseCommand.self, RmCommand.self,
            RenameCommand.self, InspectCommand.self, LogsCommand.self, WaitCommand.self, ExecCommand.self,
            AttachCommand.self, TopCommand.self, StatsCommand.self, CpCommand.self, ContainerPruneCommand.self,
        ])
}

struct ContainerListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List containers.", aliases: ["ps", "list"])
    @OptionGroup var options: PsOptions
    func run() async throws { try await PsCommand.list(options) }
}
