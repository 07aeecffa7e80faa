import CAtollShim
import Glibc

/// Starts programs with exactly the descriptors it is given (posix_spawn, no fork of the Swift
/// runtime), default signal dispositions and an empty signal mask. Used for the per-container
/// monitor, which outlives the daemon and must not inherit the daemon's sockets.
public enum ProcessLauncher {
    /// Starts `path` with `arguments` (argv[0] is `path`). `descriptors[i]` becomes the child's
    /// descriptor i; nil opens /dev/null there. Every other descriptor is closed in the child.
    public static func spawn(
        _ path: String, _ arguments: [String], environment: [String], descriptors: [Int32?],
        newSession: Bool = false
    ) throws -> pid_t {
        let argv = [path] + arguments
        var pid: pid_t = 0
        let fds = descriptors.map { $0 ?? -1 }
        let err = withCStrings(argv) { argvPointer in
            withCStrings(environment) { envPointer in
                fds.withUnsafeBufferPointer { fdBuffer in
                    atoll_spawn(
                        path, argvPointer, envPointer, fdBuffer.baseAddress, Int32(fds.count), newSession ? 1 : 0,
                        &pid)
                }
            }
        }
        guard err == 0 else { throw SystemCallError(call: "posix_spawn", subject: path, errno: err) }
        return pid
    }

    /// Runs a short-lived program and captures what it printed (up to the pipes' 1 MiB each:
    /// meant for tools that print little, such as an OCI runtime's subcommands). Much cheaper
    /// than Foundation's Process, which matters on a container's start path.
    public static func run(_ path: String, _ arguments: [String]) throws -> Subprocess.Result {
        var out: [Int32] = [-1, -1]
        var err: [Int32] = [-1, -1]
        try Syscall.retrying("pipe2") { atoll_pipe_cloexec(&out, 1 << 20) }
        let outRead = FileDescriptor(owning: out[0])
        let outWrite = FileDescriptor(owning: out[1])
        try Syscall.retrying("pipe2") { atoll_pipe_cloexec(&err, 1 << 20) }
        let errRead = FileDescriptor(owning: err[0])
        let errWrite = FileDescriptor(owning: err[1])
        let environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        let pid = try spawn(
            path, arguments, environment: environment, descriptors: [nil, outWrite.rawValue, errWrite.rawValue])
        outWrite.close()
        errWrite.close()
        let status = try wait(pid)
        let stdout = (try? outRead.readAll(limit: 1 << 20)) ?? []
        let stderr = (try? errRead.readAll(limit: 1 << 20)) ?? []
        return Subprocess.Result(
            status: status, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Waits for a child and returns its exit status (128 + signal when a signal ended it).
    public static func wait(_ pid: pid_t) throws -> Int32 {
        var status: Int32 = 0
        try Syscall.retrying("waitpid", "\(pid)") { waitpid(pid, &status, 0) }
        return decode(status)
    }

    /// Decodes a waitpid status the way shells do.
    public static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }

    /// Whether a process with this pid exists (it may be a zombie).
    public static func isAlive(_ pid: pid_t) -> Bool {
        pid > 0 && (kill(pid, 0) == 0 || atoll_errno() == EPERM)
    }

    /// A pipe whose ends are closed on exec (give them to `spawn` to hand them on).
    public static func pipe() throws -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        try Syscall.retrying("pipe2") { atoll_pipe_cloexec(&fds, 65536) }
        return (FileDescriptor(owning: fds[0]), FileDescriptor(owning: fds[1]))
    }

    private static func withCStrings<R>(
        _ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R
    ) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeBufferPointer { buffer in
            // Safe: the buffer is non-empty (it holds at least the terminating nil).
            body(buffer.baseAddress.unsafelyUnwrapped)
        }
    }
}

/// Unix-socket and terminal calls the runtime needs.
extension Syscall {
    /// Connects a SOCK_SEQPACKET socket to `path` (use /proc/self/fd/N/name for long paths).
    public static func connectSeqPacket(_ path: String) throws(SystemCallError) -> FileDescriptor {
        let fd = try retrying("connect", path) { atoll_connect_seqpacket(path) }
        return FileDescriptor(owning: fd)
    }

    /// Receives one descriptor sent with SCM_RIGHTS.
    public static func receiveDescriptor(on socket: Int32) throws(SystemCallError) -> FileDescriptor {
        FileDescriptor(owning: try retrying("recvmsg") { atoll_receive_fd(socket) })
    }

    /// An inotify descriptor watching `path` for files written or moved into it.
    public static func watchDirectory(_ path: String) throws(SystemCallError) -> FileDescriptor {
        FileDescriptor(owning: try retrying("inotify_add_watch", path) { atoll_inotify_watch_directory(path) })
    }

    /// Sends a signal to a process.
    public static func kill(_ pid: pid_t, _ signal: Int32) throws(SystemCallError) {
        try retrying("kill", "\(pid)") { Glibc.kill(pid, signal) }
    }
}
