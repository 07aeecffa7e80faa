import AtollAPI
import AtollCore
import AtollEngine
import AtollNetwork
import AtollRuntime
import AtollVolumes
import Foundation
import GRPCCore

/// The Containers service: decodes, calls the engine's ContainerService off the async pool, and
/// encodes; attach and exec join the monitor's socket to the RPC stream.
struct ContainersService: Atoll_Engine_V1_Containers.SimpleServiceProtocol {
    let engine: Engine
    var containers: ContainerService { engine.containers }

    func create(request: Atoll_Engine_V1_CreateContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_CreateContainerResponse
    {
        let settings = try Self.settings(from: request.config)
        let containers = self.containers
        let record = try await BlockingWork.run { try containers.create(settings) }
        var response = Atoll_Engine_V1_CreateContainerResponse()
        response.id = record.id
        return response
    }

    static func settings(from config: Atoll_Engine_V1_ContainerConfig) throws -> ContainerSettings {
        var settings = ContainerSettings()
        settings.image = config.image
        guard !config.image.isEmpty else { throw AtollError.invalidArgument("create needs an image") }
        settings.name = config.name
        settings.cmd = config.cmd
        settings.entrypoint = config.entrypointSet ? config.entrypoint : nil
        settings.env = config.env
        settings.user = config.user
        settings.workdir = config.workdir
        settings.hostname = config.hostname
        settings.tty = config.tty
        settings.openStdin = config.openStdin
        settings.readOnly = config.readOnly
        settings.capAdd = config.capAdd
        settings.capDrop = config.capDrop
        settings.securityOpt = config.securityOpt
        settings.privileged = config.privileged
        settings.initProcess = config.init_p
        settings.memoryBytes = config.memoryBytes
        settings.nanoCPUs = config.nanoCpus
        settings.pidsLimit = config.pidsLimit
        settings.shmSizeBytes = config.shmSizeBytes
        settings.ulimits = config.ulimits
        settings.restartPolicy = try RestartPolicy(parsing: config.restartPolicy)
        settings.autoRemove = config.autoRemove
        settings.runtime = config.runtime
        settings.labels = config.labels
        settings.stopSignal = config.stopSignal
        settings.stopTimeout = config.stopTimeout
        settings.network = config.network
        var networking = ContainerNetworking()
        if !config.ipv4Address.isEmpty || !config.ipv6Address.isEmpty || !config.networkAliases.isEmpty {
            networking.attachments = [
                NetworkAttachment(
                    network: config.network.isEmpty ? "bridge" : config.network, ipv4: config.ipv4Address,
                    ipv6: config.ipv6Address, aliases: config.networkAliases)
            ]
        }
        networking.ports = try config.publish.flatMap(PortSpec.parse)
        networking.publishAll = config.publishAll
        networking.dns = config.dns
        networking.dnsSearch = config.dnsSearch
        networking.dnsOptions = config.dnsOptions
        networking.extraHosts = config.extraHosts
        settings.networking = networking
        settings.mounts =
            try config.volumes.map(MountParser.volumeFlag) + config.mounts.map(MountParser.mountFlag)
            + config.tmpfs.map(MountParser.tmpfsFlag)
        settings.volumesFrom = config.volumesFrom
        if config.hasHealth {
            var health = HealthSettings()
            health.test = config.health.test
            health.interval = config.health.intervalNs
            health.timeout = config.health.timeoutNs
            health.startPeriod = config.health.startPeriodNs
            health.retries = Int(config.health.retries)
            health.disabled = config.health.disabled || config.health.test == ["NONE"]
            settings.health = health
        }
        return settings
    }

    func start(request: Atoll_Engine_V1_ContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ContainerResponse
    {
        let containers = self.containers
        let id = try await BlockingWork.run {
            let record = try containers.lookup(request.container)
            try containers.start(record.id)
            return record.id
        }
        return Self.response(id)
    }

    func attach(
        request: RPCAsyncSequence<Atoll_Engine_V1_AttachRequest, any Error>,
        response: RPCWriter<Atoll_Engine_V1_AttachResponse>, context: ServerContext
    ) async throws {
        var iterator = request.makeAsyncIterator()
        guard let first = try await iterator.next(), case .header(let header)? = first.part else {
            throw RPCError(code: .invalidArgument, message: "attach: the first message must carry the header")
        }
        let containers = self.containers
        let (connection, record) = try await BlockingWork.run {
            let record = try containers.lookup(header.container)
            if header.start {
                let size = header.rows > 0 ? (rows: header.rows, columns: header.columns) : nil
                guard let connection = try containers.start(record.id, attach: true, consoleSize: size) else {
                    throw AtollError.internalError("container \(record.id) started without an attach connection")
                }
                return (connection, record)
            }
            return try containers.attach(record.id)
        }
        if header.rows > 0 { containers.resize(record.id, rows: header.rows, columns: header.columns) }
        var ready = Atoll_Engine_V1_AttachResponse()
        ready.ready = true
        try await response.write(ready)
        let id = record.id
        let input = IteratorBox(iterator)
        try await Self.pump(
            connection: connection, stdout: header.stdout, stderr: header.stderr, response: response,
            finish: {
                guard header.waitExit else { return nil }
                return try await containers.wait(id)
            }
        ) {
            while let message = try await input.next() {
                switch message.part {
                case .stdin(let data)?:
                    if header.stdin { try await BlockingWork.run { try connection.write(Array(data)) } }
                case .closeStdin?: if header.stdin { connection.closeStdin() }
                case .resize(let size)?: containers.resize(id, rows: size.rows, columns: size.columns)
                default: break
                }
            }
        }
    }

    /// Copies the monitor's output to the response while `forwardInput` (in a task of its own)
    /// feeds stdin, then sends the exit code `finish` answers (if any) and stops the input.
    static func pump(
        connection: AttachConnection, stdout: Bool, stderr: Bool,
        response: RPCWriter<Atoll_Engine_V1_AttachResponse>,
        finish: @escaping @Sendable () async throws -> Int32?,
        forwardInput: @escaping @Sendable () async throws -> Void
    ) async throws {
        let output = AsyncThrowingStream<(LogStream, [UInt8]), any Error> { continuation in
            let thread = Thread {
                do {
                    while let (stream, data) = try connection.read() { continuation.yield((stream, data)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            thread.name = "atoll.attach"
            continuation.onTermination = { _ in connection.close() }
            thread.start()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Input errors (a client that went away) end the input only, never the output.
            group.addTask { try? await forwardInput() }
            defer { group.cancelAll() }
            for try await (stream, data) in output {
                var message = Atoll_Engine_V1_AttachResponse()
                if stream == .stderr {
                    guard stderr else { continue }
                    message.stderr = Data(data)
                } else {
                    guard stdout else { continue }
                    message.stdout = Data(data)
                }
                try await response.write(message)
            }
            if let code = try await finish() {
                var message = Atoll_Engine_V1_AttachResponse()
                message.exitCode = code
                try await response.write(message)
            }
        }
    }

    func stop(request: Atoll_Engine_V1_StopContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ContainerResponse
    {
        let record = try await lookup(request.container)
        try await containers.stop(record.id, timeout: request.timeout)
        return Self.response(record.id)
    }

    func kill(request: Atoll_Engine_V1_KillContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ContainerResponse
    {
        let signal = request.signal.isEmpty ? SIGKILL : try Signals.number(request.signal)
        let record = try await lookup(request.container)
        try await containers.kill(record.id, signal: signal)
        return Self.response(record.id)
    }

    func restart(request: Atoll_Engine_V1_StopContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ContainerResponse
    {
        let record = try await lookup(request.container)
        try await containers.restart(record.id, timeout: request.timeout)
        return Self.response(record.id)
    }

    func pause(request: Atoll_Engine_V1_ContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ContainerResponse
    {
        let containers = self.containers
        let record = try await lookup(request.container)
        try await BlockingWork.run { try containers.setPaused(record.id, true) }
        return Self.response(record.id)
    }

    func unpause(request: Atoll_Engine_V1_ContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ContainerResponse
    {
        let containers = self.containers
        let record = try await lookup(request.container)
        try await BlockingWork.run { try containers.setPaused(record.id, false) }
        return Self.response(record.id)
    }

    func remove(request: Atoll_Engine_V1_RemoveContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ContainerResponse
    {
        let record = try await lookup(request.container)
        try await containers.remove(record.id, force: request.force, volumes: request.volumes)
        return Self.response(record.id)
    }

    func rename(request: Atoll_Engine_V1_RenameContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ContainerResponse
    {
        let containers = self.containers
        let record = try await lookup(request.container)
        try await BlockingWork.run { try containers.rename(record.id, to: request.newName) }
        return Self.response(record.id)
    }

    func list(request: Atoll_Engine_V1_ListContainersRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ListContainersResponse
    {
        let containers = self.containers
        let summaries = try await BlockingWork.run { try containers.list(all: request.all, filters: request.filters) }
        var response = Atoll_Engine_V1_ListContainersResponse()
        response.containers = summaries.map { summary in
            var message = Atoll_Engine_V1_ContainerSummary()
            message.id = summary.record.id
            message.name = summary.record.name
            message.image = summary.imageName
            message.imageID = summary.record.imageID
            message.command = summary.command
            message.created = summary.record.created / 1_000_000_000
            message.state = summary.record.state.status.rawValue
            message.status = summary.status
            message.labels = summary.record.settings.labels
            message.health = summary.health
            message.exitCode = summary.record.state.exitCode
            message.ports = summary.ports
            message.networks = summary.networks
            return message
        }
        return response
    }

    func inspect(request: Atoll_Engine_V1_ContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_InspectContainerResponse
    {
        let containers = self.containers
        let document = try await BlockingWork.run { () -> Data in
            try JSONSerialization.data(
                withJSONObject: try containers.inspect(request.container),
                options: [.sortedKeys, .withoutEscapingSlashes])
        }
        var response = Atoll_Engine_V1_InspectContainerResponse()
        response.json = document
        return response
    }

    func logs(
        request: Atoll_Engine_V1_LogsRequest, response: RPCWriter<Atoll_Engine_V1_LogEntry>, context: ServerContext
    ) async throws {
        let containers = self.containers
        let wantStdout = request.stdout || !request.stderr
        let wantStderr = request.stderr || !request.stdout
        let until = request.until > 0 ? request.until : nil
        func send(_ records: [LogRecord]) async throws {
            for record in records {
                if let until, record.timestamp > until { continue }
                guard record.stream == .stdout ? wantStdout : wantStderr else { continue }
                var entry = Atoll_Engine_V1_LogEntry()
                entry.timestamp = record.timestamp
                entry.stderr = record.stream == .stderr
                entry.content = Data(record.content)
                entry.partial = record.partial
                try await response.write(entry)
            }
        }
        let first = try await BlockingWork.run {
            try containers.logs(
                request.container, tail: request.tail >= 0 ? Int(request.tail) : nil,
                since: request.since > 0 ? request.since : nil, until: until)
        }
        try await send(first.records)
        guard request.follow else { return }
        var offset = first.offset
        let since = request.since
        while !Task.isCancelled {
            let from = offset
            let next = try await BlockingWork.run { try containers.logs(id: first.id, from: from) }
            offset = next.offset
            try await send(next.records.filter { since == 0 || $0.timestamp >= since })
            if let until, Int64(Date().timeIntervalSince1970 * 1e9) > until { return }
            if !next.running && next.records.isEmpty { return }
            if next.records.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        }
    }

    func wait(request: Atoll_Engine_V1_ContainerRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_WaitContainerResponse
    {
        var response = Atoll_Engine_V1_WaitContainerResponse()
        response.exitCode = try await containers.wait(request.container)
        return response
    }

    func exec(
        request: RPCAsyncSequence<Atoll_Engine_V1_ExecRequest, any Error>,
        response: RPCWriter<Atoll_Engine_V1_AttachResponse>, context: ServerContext
    ) async throws {
        var iterator = request.makeAsyncIterator()
        guard let first = try await iterator.next(), case .header(let header)? = first.part else {
            throw RPCError(code: .invalidArgument, message: "exec: the first message must carry the header")
        }
        var options = ExecOptions(command: header.cmd)
        options.env = header.env
        options.user = header.user
        options.workdir = header.workdir
        options.tty = header.tty
        options.stdin = header.stdin
        options.detach = header.detach
        options.privileged = header.privileged
        let containers = self.containers
        let execOptions = options
        let handle = try await BlockingWork.run { try containers.exec(header.container, execOptions) }
        if header.rows > 0 {
            AttachConnection.resize(bundle: handle.bundle, rows: header.rows, columns: header.columns)
        }
        var ready = Atoll_Engine_V1_AttachResponse()
        ready.ready = true
        try await response.write(ready)
        guard let connection = handle.connection else { return }
        defer { containers.finishExec(bundle: handle.bundle, execID: handle.id) }
        let session = handle.session
        let input = IteratorBox(iterator)
        try await Self.pump(
            connection: connection, stdout: true, stderr: true, response: response,
            finish: { try await BlockingWork.runOnOwnThread { try session.waitForExit() } }
        ) {
            while let message = try await input.next() {
                switch message.part {
                case .stdin(let data)?:
                    if header.stdin { try await BlockingWork.run { try connection.write(Array(data)) } }
                case .closeStdin?: if header.stdin { connection.closeStdin() }
                case .resize(let size)?:
                    AttachConnection.resize(bundle: handle.bundle, rows: size.rows, columns: size.columns)
                default: break
                }
            }
        }
    }

    func top(request: Atoll_Engine_V1_TopRequest, context: ServerContext) async throws -> Atoll_Engine_V1_TopResponse {
        let containers = self.containers
        let result = try await BlockingWork.run { try containers.top(request.container, psArguments: request.psArgs) }
        var response = Atoll_Engine_V1_TopResponse()
        response.titles = result.titles
        response.processes = result.rows.map { row in
            var message = Atoll_Engine_V1_ProcessRow()
            message.fields = row
            return message
        }
        return response
    }

    func stats(
        request: Atoll_Engine_V1_StatsRequest, response: RPCWriter<Atoll_Engine_V1_ContainerStats>,
        context: ServerContext
    ) async throws {
        let containers = self.containers
        repeat {
            let samples = try await BlockingWork.run { try containers.stats(request.containers) }
            for sample in samples {
                var message = Atoll_Engine_V1_ContainerStats()
                message.id = sample.id
                message.name = sample.name
                message.cpuUsageNs = sample.cpuUsageNanoseconds
                message.systemCpuNs = sample.systemCPUNanoseconds
                message.onlineCpus = sample.onlineCPUs
                message.memoryUsage = sample.memoryUsage
                message.memoryLimit = sample.memoryLimit
                message.pids = sample.pids
                message.blockRead = sample.blockRead
                message.blockWrite = sample.blockWrite
                message.readTime = Int64(sample.readAt.timeIntervalSince1970 * 1e9)
                try await response.write(message)
            }
            if request.stream { try await Task.sleep(for: .seconds(1)) }
        } while request.stream && !Task.isCancelled
    }

    func prune(request: Atoll_Engine_V1_PruneContainersRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_PruneContainersResponse
    {
        let result = try await containers.prune(filters: request.filters)
        var response = Atoll_Engine_V1_PruneContainersResponse()
        response.removed = result.removed
        response.reclaimedBytes = result.reclaimed
        return response
    }

    func copyTo(request: RPCAsyncSequence<Atoll_Engine_V1_CopyToRequest, any Error>, context: ServerContext)
        async throws -> Atoll_Engine_V1_CopyToResponse
    {
        var iterator = request.makeAsyncIterator()
        guard let first = try await iterator.next(), case .header(let header)? = first.part else {
            throw RPCError(code: .invalidArgument, message: "cp: the first message must carry the header")
        }
        let containers = self.containers
        try await StreamBridge.feed(consume: { fd, _ in
            try containers.copyIn(header.container, path: header.path, from: fd)
        }) { write in
            while let message = try await iterator.next() {
                guard case .chunk(let data)? = message.part else {
                    throw RPCError(code: .invalidArgument, message: "cp: only the first message may carry a header")
                }
                try await write(data)
            }
        }
        return Atoll_Engine_V1_CopyToResponse()
    }

    func copyFrom(
        request: Atoll_Engine_V1_CopyFromRequest, response: RPCWriter<Atoll_Engine_V1_DataChunk>,
        context: ServerContext
    ) async throws {
        let containers = self.containers
        // Fail before the first byte when the container or path does not exist.
        _ = try await lookup(request.container)
        try await StreamBridge.drain(produce: { fd in
            try containers.copyOut(request.container, path: request.path, to: fd)
        }) { data in
            var chunk = Atoll_Engine_V1_DataChunk()
            chunk.data = data
            try await response.write(chunk)
        }
    }

    private func lookup(_ reference: String) async throws -> ContainerRecord {
        let containers = self.containers
        return try await BlockingWork.run { try containers.lookup(reference) }
    }

    static func response(_ id: String) -> Atoll_Engine_V1_ContainerResponse {
        var response = Atoll_Engine_V1_ContainerResponse()
        response.id = id
        return response
    }
}

/// Hands a request stream's iterator, after its first message was read, to the one task that
/// reads the rest. Never used by two tasks at once, which is what makes the unchecked
/// Sendable sound.
final class IteratorBox<Element: Sendable>: @unchecked Sendable {
    private var iterator: RPCAsyncSequence<Element, any Error>.AsyncIterator

    init(_ iterator: RPCAsyncSequence<Element, any Error>.AsyncIterator) { self.iterator = iterator }

    func next() async throws -> Element? { try await iterator.next() }
}
