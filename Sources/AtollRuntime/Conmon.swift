import AtollCore
import Foundation
import Glibc

/// Where one container's monitor keeps its files.
public struct MonitorFiles: Sendable, Equatable {
    /// The OCI bundle (config.json); conmon also puts its attach socket and control FIFOs here.
    public var bundle: String
    /// The container's log, in conmon's k8s-file format.
    public var log: String
    /// Written by the runtime: the container's init pid.
    public var containerPid: String
    /// Written by conmon: its own pid.
    public var monitorPid: String
    /// Shared by all containers of a daemon: conmon writes a file named by the container ID
    /// holding the exit code when the container's init exits.
    public var exitDirectory: String
    /// Shared, short directory of symlinks to bundles, so attach socket paths stay under 108 bytes.
    public var socketDirectory: String

    public init(
        bundle: String, log: String, containerPid: String, monitorPid: String, exitDirectory: String,
        socketDirectory: String
    ) {
        self.bundle = bundle
        self.log = log
        self.containerPid = containerPid
        self.monitorPid = monitorPid
        self.exitDirectory = exitDirectory
        self.socketDirectory = socketDirectory
    }
}

/// Drives conmon, the per-container monitor Podman and CRI-O use: a small C program that holds the
/// container's stdio (or its terminal), writes the log with timestamps and stream tags, serves
/// attach connections, records the exit code, and outlives the daemon.
///
/// Protocol (conmon API version 1): the daemon passes a sync pipe (fd 3) and a start pipe (fd 4);
/// conmon double-forks, waits for a byte on the start pipe, runs `runtime create`, then writes
/// `{"data": PID}` (or `{"data": -1, "message": …}`) on the sync pipe. The container then waits for
/// `runtime start`. For exec, an attach pipe (fd 5) reports when the attach socket is ready, a
/// second byte on the start pipe lets the process run, and the sync pipe finally carries its exit code.
public struct Conmon: Sendable {
    public var path: String
    public var runtime: OCIRuntime

    public init(path: String, runtime: OCIRuntime) {
        self.path = path
        self.runtime = runtime
    }

    /// Finds conmon on the host.
    public static func locate() -> String? { Subprocess.which("conmon") }

    /// The short handle conmon knows a session by (its socket symlink name, its exec exit file).
    public static func handle(_ id: String) -> String { String(id.prefix(12)) }

    /// Creates the container under a new monitor and returns the pids of the container's init and
    /// of the monitor. The container is created, not started.
    public func create(id: String, name: String, files: MonitorFiles, terminal: Bool, stdin: Bool) throws -> (
        pid: Int32, monitorPid: Int32
    ) {
        var arguments = common(id: id, handle: Self.handle(id), name: name, bundle: files.bundle)
        arguments += [
            "-p", files.containerPid, "--exit-dir", files.exitDirectory, "-l", "k8s-file:\(files.log)",
            "--conmon-pidfile", files.monitorPid, "--socket-dir-path", files.socketDirectory,
            // No fsync of the log at exit: it delays the exit code, and Docker's logs are not synced either.
            "--no-sync-log",
        ]
        if terminal { arguments.append("-t") }
        if stdin { arguments.append("-i") }
        let session = try launch(arguments, bundle: files.bundle, attachPipe: false)
        let pid = try session.readPid(what: "create container \(name)")
        let monitorPid = (try? FileSystem.readFile(files.monitorPid)).flatMap {
            Int32(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return (pid, monitorPid ?? 0)
    }

    /// Starts an exec session: `process` is the process spec file (config.json's "process").
    /// With `attach`, returns once the attach socket is ready and before the process runs: connect,
    /// then call `release()` on the session. The session's sync pipe later carries the exit code.
    public func exec(
        containerID: String, execID: String, bundle: String, processSpec: String, socketDirectory: String,
        terminal: Bool, stdin: Bool, attach: Bool
    ) throws -> ExecSession {
        var arguments = common(id: containerID, handle: Self.handle(execID), name: containerID, bundle: bundle)
        arguments += [
            "-p", "\(bundle)/pid", "--exit-dir", bundle, "-l", "none", "--socket-dir-path", socketDirectory,
            "-e", "--exec-process-spec", processSpec,
        ]
        if attach { arguments.append("--exec-attach") }
        if terminal { arguments.append("-t") }
        if stdin { arguments.append("-i") }
        return try launch(arguments, bundle: bundle, attachPipe: attach)
    }

    private func common(id: String, handle: String, name: String, bundle: String) -> [String] {
        var arguments = ["--api-version", "1", "-c", id, "-u", handle, "-r", runtime.path, "-b", bundle, "-n", name]
        for argument in runtime.globalArguments { arguments += ["--runtime-arg", argument] }
        arguments += ["--log-level", "error"]
        return arguments
    }

    private func launch(_ arguments: [String], bundle: String, attachPipe: Bool) throws -> ExecSession {
        let sync = try ProcessLauncher.pipe()
        let start = try ProcessLauncher.pipe()
        let attach = attachPipe ? try ProcessLauncher.pipe() : nil
        let errors = try Syscall.open(
            "\(bundle)/monitor.log", flags: O_WRONLY | O_CREAT | O_APPEND, mode: 0o600)
        var environment = ["_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        var descriptors: [Int32?] = [nil, nil, errors.rawValue, sync.write.rawValue, start.read.rawValue]
        if let attach {
            environment.append("_OCI_ATTACHPIPE=5")
            descriptors.append(attach.write.rawValue)
        }
        let pid = try ProcessLauncher.spawn(path, arguments, environment: environment, descriptors: descriptors)
        sync.write.close()
        start.read.close()
        attach?.write.close()
        errors.close()
        // conmon may already have failed (EPIPE): reap it either way, then report.
        let released = Result { try start.write.writeAll(Array("0".utf8)) }
        let status = try ProcessLauncher.wait(pid)
        try released.get()
        guard status == 0 else {
            let log = (try? FileSystem.readFile("\(bundle)/monitor.log")).map { String(decoding: $0, as: UTF8.self) }
            throw AtollError.internalError(
                "conmon exited with status \(status)\(log.map { ": \(OCIRuntime.message(from: $0))" } ?? "")")
        }
        let session = ExecSession(sync: sync.read, start: start.write, attach: attach?.read)
        if attachPipe { _ = try session.readMessage(from: session.attach, what: "wait for the attach socket") }
        return session
    }
}

/// The daemon's end of a monitor's pipes.
public final class ExecSession: Sendable {
    let sync: FileDescriptor
    let start: FileDescriptor
    let attach: FileDescriptor?

    init(sync: FileDescriptor, start: FileDescriptor, attach: FileDescriptor?) {
        self.sync = sync
        self.start = start
        self.attach = attach
    }

    /// Lets an attached exec run (call after connecting to its attach socket); answers its pid.
    public func release() throws -> Int32 {
        try start.writeAll(Array("0".utf8))
        return try readPid(what: "run the process")
    }

    /// The pid of a detached exec's process (or the runtime's failure).
    public func pid() throws -> Int32 { try readPid(what: "run the process") }

    /// Blocks until the exec'd process exits and answers its exit code.
    public func waitForExit() throws -> Int32 {
        let code = try readMessage(from: sync, what: "wait for the process")
        return Int32(clamping: code.data)
    }

    func readPid(what: String) throws -> Int32 {
        let message = try readMessage(from: sync, what: what)
        guard message.data > 0 else {
            throw RuntimeFailure(message: message.message ?? "the runtime failed without saying why")
        }
        return Int32(clamping: message.data)
    }

    struct Message: Decodable {
        var data: Int64
        var message: String?
    }

    /// Reads one newline-terminated JSON message from a monitor pipe.
    func readMessage(from fd: FileDescriptor?, what: String) throws -> Message {
        guard let fd else { throw AtollError.internalError("no pipe to \(what)") }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = try withUnsafeMutableBytes(of: &byte) { try fd.read(into: $0) }
            if count == 0 || byte == UInt8(ascii: "\n") { break }
            line.append(byte)
            if line.count > 1 << 20 { break }
        }
        guard !line.isEmpty else {
            throw AtollError.internalError("conmon ended before it could \(what) (see monitor.log in the bundle)")
        }
        do {
            return try JSONDecoder().decode(Message.self, from: Data(line))
        } catch {
            throw AtollError.internalError(
                "conmon sent an unreadable message: \(String(decoding: line, as: UTF8.self))")
        }
    }
}

/// The runtime refused to create or exec a process; `message` is its own words (cleaned).
public struct RuntimeFailure: Error, CustomStringConvertible, Sendable {
    public var message: String

    init(message: String) { self.message = OCIRuntime.message(from: message) }

    public var description: String { message }

    /// Docker's exit status for a failure to start: 127 when the command does not exist, 126 when
    /// it exists but cannot be executed, 125 otherwise.
    public var exitStatus: Int32 {
        let text = message.lowercased()
        if text.contains("executable file not found") || text.contains("no such file or directory") { return 127 }
        if text.contains("permission denied") || text.contains("exec format error") || text.contains("is a directory") {
            return 126
        }
        return 125
    }
}
