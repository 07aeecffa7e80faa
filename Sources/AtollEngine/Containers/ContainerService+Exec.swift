import AtollCore
import AtollRuntime
import Foundation
import Glibc

/// What `atoll exec` asked for.
public struct ExecOptions: Sendable {
    public var command: [String]
    public var env: [String] = []
    public var user = ""
    public var workdir = ""
    public var tty = false
    public var stdin = false
    public var detach = false
    public var privileged = false

    public init(command: [String]) { self.command = command }
}

/// A process started in a container by `exec`.
public struct ExecHandle: Sendable {
    public var id: String
    public var session: ExecSession
    /// The attach connection (nil for a detached exec).
    public var connection: AttachConnection?
    public var bundle: String
    public var pid: Int32
}

extension ContainerService {
    /// Starts a process in a running container under its own conmon. An attached exec is
    /// connected before the process runs, so no output is missed.
    public func exec(_ reference: String, _ options: ExecOptions) throws -> ExecHandle {
        let record = try lookup(reference)
        guard record.state.status == .running else {
            throw AtollError.failedPrecondition(
                "container \"\(record.name)\" is \(record.state.status == .paused ? "paused, unpause it first" : "not running")"
            )
        }
        guard !options.command.isEmpty else { throw AtollError.invalidArgument("exec needs a command") }
        let runtime = try self.runtime(named: record.state.runtime)
        guard let conmonPath = Conmon.locate() else {
            throw AtollError(.unavailable, "conmon is not installed: atolld runs every process under conmon")
        }
        let execID = Identifier.random()
        let bundle = "\(paths.bundle(record.id))/exec/\(execID.prefix(12))"
        try Syscall.mkdirAll(bundle, mode: 0o700)
        do {
            let processSpec = try writeProcessSpec(record, options, to: "\(bundle)/process.json")
            let conmon = Conmon(path: conmonPath, runtime: runtime)
            let attach = !options.detach
            let session = try conmon.exec(
                containerID: record.id, execID: execID, bundle: bundle, processSpec: processSpec,
                socketDirectory: paths.sockets, terminal: options.tty, stdin: options.stdin && attach, attach: attach)
            var connection: AttachConnection?
            let pid: Int32
            if attach {
                connection = try AttachConnection(socketDirectory: paths.sockets, handle: Conmon.handle(execID))
                pid = try session.release()
            } else {
                pid = try session.pid()
            }
            return ExecHandle(id: execID, session: session, connection: connection, bundle: bundle, pid: pid)
        } catch {
            finishExec(bundle: bundle, execID: execID)
            if let failure = error as? RuntimeFailure {
                throw ContainerStartError(
                    message: "cannot exec in container \(record.name): \(failure.message)",
                    exitStatus: failure.exitStatus)
            }
            throw error
        }
    }

    /// Removes an exec session's files once it ended.
    public func finishExec(bundle: String, execID: String) {
        unlink("\(paths.sockets)/\(Conmon.handle(execID))")
        try? FileSystem.removeTree(bundle)
    }

    /// The container's process spec adapted for an exec: same capabilities, rlimits and
    /// security settings, with the exec's command, environment, user and directory.
    func writeProcessSpec(_ record: ContainerRecord, _ options: ExecOptions, to path: String) throws -> String {
        let configBytes = try FileSystem.readFile("\(paths.bundle(record.id))/config.json")
        var process = try JSONDecoder().decode(RuntimeSpec.self, from: Data(configBytes)).process
        process.args = options.command
        process.env = Self.mergeEnvironment(image: process.env, overrides: options.env)
        process.terminal = options.tty
        process.consoleSize = nil
        if !options.user.isEmpty {
            let user = try UserLookup.resolve(options.user, rootfs: paths.rootfs(record.id))
            process.user.uid = user.uid
            process.user.gid = user.gid
            process.user.additionalGids = user.additionalGids.isEmpty ? nil : user.additionalGids
        }
        if !options.workdir.isEmpty {
            guard options.workdir.hasPrefix("/") else {
                throw AtollError.invalidArgument("the working directory \"\(options.workdir)\" is not absolute")
            }
            process.cwd = options.workdir
        }
        if options.privileged {
            let all = SecurityDefaults.allCapabilities.filter(HostCapabilities.bounding.contains)
            process.capabilities?.bounding = all
            process.capabilities?.effective = all
            process.capabilities?.permitted = all
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        try FileSystem.writeFile(path, Array(try encoder.encode(process)))
        return path
    }

    /// Runs a command in the container and captures its combined output (health probes);
    /// a command that outlives `timeout` is killed and fails with -1.
    func execCaptured(_ record: ContainerRecord, command: [String], timeout: Duration) throws -> (
        code: Int32, output: String
    ) {
        let runtime = try self.runtime(named: record.state.runtime)
        let directory = "\(paths.bundle(record.id))/exec/health"
        try Syscall.mkdirAll(directory, mode: 0o700)
        var options = ExecOptions(command: command)
        options.detach = false
        let spec = try writeProcessSpec(record, options, to: "\(directory)/process.json")
        let pidFile = "\(directory)/pid"
        unlink(pidFile)
        let result = try Subprocess.run(
            runtime.path, runtime.globalArguments + ["exec", "--process", spec, "--pid-file", pidFile, record.id],
            timeout: timeout
        ) {
            // The probe itself keeps the output pipes open: kill it too.
            if let text = try? FileSystem.readFile(pidFile, limit: 32),
                let pid = Int32(String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            {
                Glibc.kill(pid, SIGKILL)
            }
        }
        return (result.timedOut ? -1 : result.status, result.stdout + result.stderr)
    }
}
