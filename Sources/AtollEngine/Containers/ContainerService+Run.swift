import AtollCore
import AtollImages
import AtollNetwork
import AtollOCI
import AtollRuntime
import AtollStorage
import Foundation
import Glibc

/// A container could not be started; `exitStatus` is what `docker run` would exit with
/// (125 for the engine's own failures, 126 cannot execute, 127 not found).
public struct ContainerStartError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var exitStatus: Int32
    public var description: String { message }
}

extension ContainerService {
    static let defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// Starts a created or stopped container. With `attach`, connects to its monitor's attach
    /// socket before the process runs (so no output is missed) and returns the connection.
    @discardableResult
    public func start(
        _ reference: String, attach: Bool = false, consoleSize: (rows: UInt32, columns: UInt32)? = nil
    ) throws -> AttachConnection? {
        let record = try lookup(reference)
        do {
            return try startLocked(record, attach: attach, consoleSize: consoleSize)
        } catch let error as ContainerStartError {
            // A container run with --rm that never ran goes too, as in Docker.
            if record.settings.autoRemove { try? removeStopped(record.id, volumes: true) }
            throw error
        }
    }

    private func startLocked(
        _ record: ContainerRecord, attach: Bool, consoleSize: (rows: UInt32, columns: UInt32)?
    ) throws -> AttachConnection? {
        let reference = record.id
        return try locks.withLock(record.id) { () throws -> AttachConnection? in
            guard var record = try fetch(record.id) else {
                throw AtollError.notFound("no such container: \(reference)")
            }
            switch record.state.status {
            case .running, .paused:
                if attach {
                    throw AtollError.failedPrecondition("container \"\(record.name)\" is already running")
                }
                return nil
            case .removing:
                throw AtollError.failedPrecondition("container \"\(record.name)\" is being removed")
            case .dead:
                throw AtollError.failedPrecondition("container \"\(record.name)\" is dead: remove it with rm -f")
            case .created, .exited, .restarting:
                break
            }
            record.state.stoppedByUser = false
            return try launch(&record, attach: attach, consoleSize: consoleSize)
        }
    }

    /// Mounts the rootfs, writes the bundle, creates the container under conmon and starts it.
    /// Called with the container's lock held. On failure everything set up is undone and the
    /// container is left stopped with the failure recorded.
    func launch(
        _ record: inout ContainerRecord, attach: Bool, consoleSize: (rows: UInt32, columns: UInt32)? = nil
    ) throws -> AttachConnection? {
        let id = record.id
        let bundle = paths.bundle(id)
        let files = MonitorFiles(
            bundle: bundle, log: paths.log(id), containerPid: "\(bundle)/container.pid",
            monitorPid: "\(bundle)/conmon.pid", exitDirectory: paths.exits, socketDirectory: paths.sockets)
        var connection: AttachConnection?
        var runtime: OCIRuntime?
        do {
            let chosen = try self.runtime(named: record.settings.runtime)
            runtime = chosen
            record.state.runtime = chosen.name
            guard let conmonPath = Conmon.locate() else {
                throw AtollError(.unavailable, "conmon is not installed: atolld runs every container under conmon")
            }
            let conmon = Conmon(path: conmonPath, runtime: chosen)
            try chosen.delete(id, force: true)  // a leftover from a crash would block create
            unlink("\(paths.sockets)/\(Conmon.handle(id))")
            unlink("\(paths.exits)/\(id)")
            let rootfs = paths.rootfs(id)
            try Mount.unmountAll(at: rootfs)
            for mount in try snapshotter.mounts(record.snapshotKey) {
                try Self.mountRoot(mount, at: rootfs, removedOnExit: record.settings.autoRemove)
            }
            let mounts: [RuntimeSpec.Mount]
            do {
                mounts = try prepareMounts(record, rootfs: rootfs)
            } catch {
                throw ContainerStartError(message: "cannot start container \(record.name): \(error)", exitStatus: 125)
            }
            let sandbox: Sandbox
            do {
                sandbox = try networks.attach(
                    SandboxRequest(
                        containerID: id, hostname: hostname(of: record), mode: record.settings.network,
                        networking: record.settings.networking ?? ContainerNetworking(),
                        exposedPorts: (try imageConfig(record).exposedPorts ?? [:]).keys.sorted()))
            } catch {
                throw ContainerStartError(message: "cannot start container \(record.name): \(error)", exitStatus: 125)
            }
            var spec = try makeSpec(for: record, rootfs: rootfs, mounts: mounts, sandbox: sandbox)
            if record.settings.tty, let consoleSize {
                spec.process.consoleSize = .init(height: consoleSize.rows, width: consoleSize.columns)
            }
            let seccompKey = seccompPrograms.key(for: spec.linux.seccomp, runtime: chosen)
            let compiled = seccompKey.flatMap { seccompPrograms.program(for: $0) }
            if let compiled {
                spec.annotations = (spec.annotations ?? [:]).merging([SeccompPrograms.annotation: compiled]) { $1 }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            try FileSystem.writeFile("\(bundle)/config.json", Array(try encoder.encode(spec)))
            let pids: (pid: Int32, monitorPid: Int32)
            do {
                pids = try conmon.create(
                    id: id, name: record.name, files: files, terminal: record.settings.tty,
                    stdin: record.settings.openStdin)
            } catch let failure as RuntimeFailure {
                throw ContainerStartError(
                    message: "cannot start container \(record.name): \(failure.message)", exitStatus: failure.exitStatus
                )
            }
            if let seccompKey, compiled == nil { seccompPrograms.learn(seccompKey, runtime: chosen, id: id) }
            if attach { connection = try AttachConnection(socketDirectory: paths.sockets, handle: Conmon.handle(id)) }
            record.state.pid = pids.pid
            record.state.monitorPid = pids.monitorPid
            try chosen.start(id)
        } catch {
            connection?.close()
            try? runtime?.delete(id, force: true)
            try? Mount.unmountAll(at: paths.rootfs(id))
            unlink("\(paths.sockets)/\(Conmon.handle(id))")
            deactivateVolumes(record)
            networks.release(id)
            let failure =
                error as? ContainerStartError
                ?? ContainerStartError(message: "cannot start container \(record.name): \(error)", exitStatus: 125)
            record.state.status = .exited
            record.state.exitCode = failure.exitStatus
            record.state.error = failure.message
            record.state.pid = 0
            record.state.monitorPid = 0
            record.state.finishedAt = Date()
            try? save(record)
            // The monitor may already have recorded an exit for the half-made container.
            unlink("\(paths.exits)/\(id)")
            throw failure
        }
        record.state.status = .running
        record.state.startedAt = Date()
        record.state.error = ""
        record.state.exitCode = 0
        record.state.health = healthConfig(for: record) == nil ? nil : HealthState()
        try save(record)
        startHealthChecks(record)
        return connection
    }

    /// Mounts (part of) a container's root. The root of a container run with --rm is never used
    /// again once it exits, so its overlay is `volatile`: the kernel then does not flush the upper
    /// file system to disk at unmount (a disk cache flush, often the slowest step of removing the
    /// container). After a crash such an upper directory cannot be mounted again; atolld removes
    /// those containers when it starts. Kernels before 5.10 lack the option: a plain mount then.
    static func mountRoot(_ mount: Mount, at rootfs: String, removedOnExit: Bool) throws {
        guard removedOnExit, mount.type == "overlay", mount.option("upperdir") != nil else {
            return try mount.mount(at: rootfs)
        }
        var volatile = mount
        volatile.options.append("volatile")
        do { try volatile.mount(at: rootfs) } catch { try mount.mount(at: rootfs) }
    }

    /// The image config this container was made from.
    func imageConfig(_ record: ContainerRecord) throws -> ImageConfig.Config {
        try imageConfig(imageID: record.imageID)
    }

    /// An image's config, read once: image IDs are config digests, so an entry never goes stale,
    /// and create, start, stop, health checks and `ps` no longer read and parse the blob each time.
    func imageConfig(imageID: String) throws -> ImageConfig.Config {
        if let cached = imageConfigs.withLock({ $0[imageID] }) { return cached }
        let config = try images.manifestAndConfig(of: try images.resolve(imageID)).1.config ?? ImageConfig.Config()
        imageConfigs.withLock { cache in
            if cache.count >= 256 { cache.removeAll() }
            cache[imageID] = config
        }
        return config
    }

    /// Merges the settings with the image's config as Docker does and builds the runtime spec.
    func makeSpec(
        for record: ContainerRecord, rootfs: String, mounts: [RuntimeSpec.Mount], sandbox: Sandbox
    ) throws -> RuntimeSpec {
        let settings = record.settings
        let image = try imageConfig(record)
        let entrypoint = settings.entrypoint ?? image.entrypoint ?? []
        // Overriding the entrypoint drops the image's Cmd, as in Docker.
        let cmd = !settings.cmd.isEmpty ? settings.cmd : (settings.entrypoint != nil ? [] : image.cmd ?? [])
        let args = entrypoint + cmd
        guard !args.isEmpty else {
            throw ContainerStartError(
                message:
                    "cannot start container \(record.name): no command specified (the image has no Cmd or Entrypoint)",
                exitStatus: 125)
        }
        let hostname = hostname(of: record)
        var env = Self.mergeEnvironment(image: image.env ?? [], overrides: settings.env)
        if !env.contains(where: { $0.hasPrefix("PATH=") }) { env.insert(Self.defaultPath, at: 0) }
        if !env.contains(where: { $0.hasPrefix("HOSTNAME=") }) { env.insert("HOSTNAME=\(hostname)", at: 1) }
        let userSpec = settings.user.isEmpty ? image.user ?? "" : settings.user
        let user: ResolvedUser
        do {
            user = try UserLookup.resolve(userSpec, rootfs: rootfs)
        } catch {
            throw ContainerStartError(message: "cannot start container \(record.name): \(error)", exitStatus: 125)
        }
        var cwd = settings.workdir.isEmpty ? image.workingDir ?? "" : settings.workdir
        if cwd.isEmpty { cwd = "/" }
        guard cwd.hasPrefix("/") else {
            throw ContainerStartError(
                message: "cannot start container \(record.name): the working directory \"\(cwd)\" is not absolute",
                exitStatus: 125)
        }

        let bundle = paths.bundle(record.id)
        try FileSystem.writeFile("\(bundle)/hostname", Array("\(hostname)\n".utf8))
        try FileSystem.writeFile("\(bundle)/hosts", Array(sandbox.hosts.utf8))
        try FileSystem.writeFile("\(bundle)/resolv.conf", Array(sandbox.resolvConf.utf8))

        var input = SpecInput(rootfs: rootfs, args: args, env: env, cwd: cwd, user: user, hostname: hostname)
        input.terminal = settings.tty
        input.readOnly = settings.readOnly
        input.privileged = settings.privileged
        input.capAdd = settings.capAdd
        input.capDrop = settings.capDrop
        input.noNewPrivileges = settings.securityOpt.contains {
            $0 == "no-new-privileges" || $0.hasSuffix("no-new-privileges=true")
                || $0.hasSuffix("no-new-privileges:true")
        }
        input.seccomp = !settings.securityOpt.contains { $0 == "seccomp=unconfined" || $0 == "seccomp:unconfined" }
        input.memoryBytes = settings.memoryBytes
        input.nanoCPUs = settings.nanoCPUs
        input.pidsLimit = settings.pidsLimit
        input.shmSizeBytes = settings.shmSizeBytes
        input.ulimits = try settings.ulimits.map(Ulimit.init(parsing:))
        input.cgroupsPath = "/atoll/\(record.id)"
        if settings.initProcess {
            guard let initBinary = Subprocess.which("catatonit") else {
                throw ContainerStartError(
                    message: "cannot start container \(record.name): --init needs catatonit, which is not installed",
                    exitStatus: 125)
            }
            input.initBinary = initBinary
        }
        input.etcFiles = [
            ("/etc/hostname", "\(bundle)/hostname"), ("/etc/hosts", "\(bundle)/hosts"),
            ("/etc/resolv.conf", "\(bundle)/resolv.conf"),
        ]
        switch sandbox.namespace {
        case .new: input.networkNamespace = nil
        case .host: input.hostNetwork = true
        case .pinned(let path): input.networkNamespace = path
        }
        input.mounts = mounts
        input.annotations = ["org.atoll.container.name": record.name]
        return try SpecBuilder.build(input)
    }

    /// `--hostname`, else the host's own name with `--network host` (as Docker), else the short ID.
    func hostname(of record: ContainerRecord) -> String {
        if !record.settings.hostname.isEmpty { return record.settings.hostname }
        if record.settings.network == "host" { return ProcessInfo.processInfo.hostName }
        return String(record.id.prefix(12))
    }

    /// The image's environment with `overrides` (KEY=VALUE, or KEY alone to drop it) applied.
    static func mergeEnvironment(image: [String], overrides: [String]) -> [String] {
        var result = image
        for entry in overrides {
            let key = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
            result.removeAll { $0 == key || $0.hasPrefix(key + "=") }
            if entry.contains("=") { result.append(entry) }
        }
        return result
    }

    // MARK: - Exits

    /// Called when a monitor recorded an exit: releases what the run held, records the exit,
    /// wakes waiters, then removes the container (`--rm`) or applies its restart policy.
    func handleExit(_ id: String, code: Int32, at when: Date) {
        var removed: ContainerRecord?
        var restart = false
        var restartCount = 0
        locks.withLock(id) {
            guard var record = try? fetch(id), record.state.status.isActive else { return }
            background.cancelHealth(id)
            var released = true
            do {
                try releaseResources(record, force: true)
            } catch {
                logger.error("cleanup after container \(id) exited failed: \(error)")
                record.state.error = "cleanup failed: \(error)"
                released = false
            }
            record.state.status = .exited
            record.state.exitCode = code
            record.state.finishedAt = when
            record.state.pid = 0
            record.state.monitorPid = 0
            if record.state.health != nil { record.state.health?.status = .unhealthy }
            if record.settings.autoRemove {
                // Recorded as removing (with its exit) and removed in one go.
                removedExits.withLock { exits in
                    exits.append((id, code))
                    if exits.count > 256 { exits.removeFirst(exits.count - 256) }
                }
                do {
                    try removeLocked(record, released: released)
                    removed = record
                } catch {
                    logger.error("removing container \(id) (--rm) failed: \(error)")
                }
                return
            }
            try? save(record)
            restart = shouldRestart(record)
            restartCount = record.state.restartCount
        }
        if let removed { removeAnonymousVolumes(of: removed) }
        waiters.notify(id)
        if restart { scheduleRestart(id, attempt: restartCount) }
    }

    // MARK: - Stop, kill, pause

    /// Sends the stop signal, waits `timeout` seconds (negative: the container's default, 10),
    /// then SIGKILL. Stopping a stopped container is not an error.
    public func stop(_ reference: String, timeout: Int32) async throws {
        let lookedUp = try lookup(reference)
        cancelRestart(lookedUp.id)
        // Under the lock, so that a restart already under way cannot slip past: the user's stop
        // is recorded whatever the state, a pending restart is called off, a running one is signalled.
        let record = try await BlockingWork.run { () -> ContainerRecord? in
            try self.locks.withLock(lookedUp.id) {
                guard var current = try self.fetch(lookedUp.id) else { return nil }
                current.state.stoppedByUser = true
                if current.state.status == .restarting { current.state.status = .exited }
                try self.save(current)
                return current
            }
        }
        guard let record, record.state.status.isActive else {
            waiters.notify(lookedUp.id)
            return
        }
        let seconds = timeout >= 0 ? timeout : (record.settings.stopTimeout >= 0 ? record.settings.stopTimeout : 10)
        let signal = try await BlockingWork.run { try self.stopSignal(record) }
        // A frozen process cannot handle its signal: a paused one is killed outright, as Docker does.
        try await signalUnlessStopped(record.id, record.state.status == .paused ? SIGKILL : signal)
        if await waitUntilStopped(record.id, timeout: .seconds(Int(seconds))) { return }
        try await signalUnlessStopped(record.id, SIGKILL)
        if !(await waitUntilStopped(record.id, timeout: .seconds(30))) {
            throw AtollError.internalError("container \"\(record.name)\" did not stop after SIGKILL")
        }
    }

    /// Signals the container; one that stopped on its own meanwhile is not an error.
    private func signalUnlessStopped(_ id: String, _ signal: Int32) async throws {
        do {
            try await kill(id, signal: signal, byUser: true)
        } catch {
            // The process may be gone with its exit not handled yet (the runtime then refuses the
            // signal): give the exit handler a moment before calling it a failure.
            if await waitUntilStopped(id, timeout: .seconds(5)) { return }
            throw error
        }
    }

    func stopSignal(_ record: ContainerRecord) throws -> Int32 {
        if !record.settings.stopSignal.isEmpty { return try Signals.number(record.settings.stopSignal) }
        if let signal = try? imageConfig(record).stopSignal, !signal.isEmpty { return try Signals.number(signal) }
        return SIGTERM
    }

    /// Sends a signal to the container's init process.
    public func kill(_ reference: String, signal: Int32, byUser: Bool = true) async throws {
        let record = try lookup(reference)
        try await BlockingWork.run {
            try self.locks.withLock(record.id) {
                guard var current = try self.fetch(record.id), current.state.status.isActive else {
                    throw AtollError.failedPrecondition("container \"\(record.name)\" is not running")
                }
                if byUser && (signal == SIGKILL || signal == SIGTERM || signal == (try? self.stopSignal(current))) {
                    current.state.stoppedByUser = true
                    try self.save(current)
                }
                let runtime = try self.runtime(named: current.state.runtime)
                if current.state.status == .paused && signal == SIGKILL {
                    try runtime.kill(current.id, signal: signal, all: true)
                    try? runtime.resume(current.id)
                } else {
                    try runtime.kill(current.id, signal: signal)
                }
            }
        }
    }

    /// Stops (if running) and starts again.
    public func restart(_ reference: String, timeout: Int32) async throws {
        let record = try lookup(reference)
        try await stop(record.id, timeout: timeout)
        try await BlockingWork.run {
            try self.start(record.id)
            try self.locks.withLock(record.id) {
                guard var current = try self.fetch(record.id) else { return }
                current.state.stoppedByUser = false
                try self.save(current)
            }
        }
    }

    /// Freezes (or thaws) every process of the container.
    public func setPaused(_ reference: String, _ paused: Bool) throws {
        let record = try lookup(reference)
        try locks.withLock(record.id) {
            guard var current = try fetch(record.id) else {
                throw AtollError.notFound("no such container: \(reference)")
            }
            let runtime = try self.runtime(named: current.state.runtime)
            if paused {
                guard current.state.status == .running else {
                    throw AtollError.failedPrecondition(
                        "container \"\(current.name)\" is \(current.state.status.rawValue), not running")
                }
                try runtime.pause(current.id)
                current.state.status = .paused
            } else {
                guard current.state.status == .paused else {
                    throw AtollError.failedPrecondition("container \"\(current.name)\" is not paused")
                }
                try runtime.resume(current.id)
                current.state.status = .running
            }
            try save(current)
        }
    }

    /// Connects to a running container's monitor (`atoll attach`).
    public func attach(_ reference: String) throws -> (AttachConnection, ContainerRecord) {
        let record = try lookup(reference)
        guard record.state.status.isActive else {
            throw AtollError.failedPrecondition(
                "you cannot attach to a stopped container, start it first (container \"\(record.name)\")")
        }
        return (try AttachConnection(socketDirectory: paths.sockets, handle: Conmon.handle(record.id)), record)
    }

    /// Resizes a container's terminal.
    public func resize(_ id: String, rows: UInt32, columns: UInt32) {
        AttachConnection.resize(bundle: paths.bundle(id), rows: rows, columns: columns)
    }
}
