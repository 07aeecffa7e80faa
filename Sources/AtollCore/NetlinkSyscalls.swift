import CAtollShim
import Glibc

/// Netlink sockets and network namespaces: the raw calls behind AtollNetwork's rtnetlink layer.
/// Like `Syscall`, each retries EINTR and throws a `SystemCallError` naming the call and its subject.
public enum NetlinkSyscall {
    /// A bound NETLINK socket of `protocol` (0 is NETLINK_ROUTE) in the caller's network namespace,
    /// or in the namespace open at `namespace` (created on a throwaway thread that setns()'s into it).
    /// Extended acknowledgements are on; a receive waits at most `timeout` seconds.
    public static func open(protocol: Int32, namespace: FileDescriptor? = nil, timeout: Int32 = 30)
        throws(SystemCallError) -> FileDescriptor
    {
        let nsfd = namespace?.rawValue ?? -1
        let fd = try Syscall.retrying("socket", "netlink protocol \(`protocol`)") {
            atoll_netlink_open(`protocol`, nsfd, timeout)
        }
        return FileDescriptor(owning: fd)
    }

    /// Sends one datagram to the kernel.
    public static func send(_ socket: FileDescriptor, _ bytes: [UInt8]) throws(SystemCallError) {
        let sent = try Syscall.retrying("send", "netlink") {
            bytes.withUnsafeBytes { atoll_netlink_send(socket.rawValue, $0.baseAddress, $0.count) }
        }
        guard sent == bytes.count else {
            throw SystemCallError(call: "send", subject: "netlink (short write)", errno: EMSGSIZE)
        }
    }

    /// Receives one whole datagram, however large (its size is peeked first).
    public static func receive(_ socket: FileDescriptor, minimumBuffer: Int = 32 << 10) throws(SystemCallError)
        -> [UInt8]
    {
        var buffer = [UInt8](repeating: 0, count: minimumBuffer)
        let size = try Syscall.retrying("recv", "netlink") {
            buffer.withUnsafeMutableBytes { atoll_netlink_receive(socket.rawValue, $0.baseAddress, $0.count, 1) }
        }
        if size > buffer.count { buffer = [UInt8](repeating: 0, count: size) }
        let received = try Syscall.retrying("recv", "netlink") {
            buffer.withUnsafeMutableBytes { atoll_netlink_receive(socket.rawValue, $0.baseAddress, $0.count, 0) }
        }
        return Array(buffer[0..<min(received, buffer.count)])
    }

    /// Creates a network namespace pinned at `path` (see `atoll_netns_create`).
    public static func createNetworkNamespace(at path: String) throws(SystemCallError) {
        try Syscall.retrying("create network namespace", path) { atoll_netns_create(path) }
    }

    /// strerror(3), lower case: "file exists".
    public static func describe(errno: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        atoll_describe_errno(errno, &buffer, buffer.count)
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self).lowercased()
    }
}
