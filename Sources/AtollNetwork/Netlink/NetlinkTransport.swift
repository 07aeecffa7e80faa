import AtollCore
import CAtollShim

/// Where netlink requests go and replies come from: one datagram at a time. `NetlinkSocket` is
/// the kernel; tests substitute a fake that records requests and plays back replies.
public protocol NetlinkTransport {
    /// Sends one request datagram.
    func send(_ bytes: [UInt8]) throws
    /// Receives one reply datagram (it may hold several messages).
    func receive() throws -> [UInt8]
}

/// A NETLINK_ROUTE socket: bound, with extended acks, in the caller's network namespace or in a
/// given one. Not safe for concurrent use on its own; `RouteNetlink` serializes access.
public final class NetlinkSocket: NetlinkTransport {
    public let descriptor: FileDescriptor

    /// A socket in the calling thread's network namespace.
    public init() throws {
        descriptor = try NetlinkSyscall.open(protocol: ATOLL_NETLINK_ROUTE)
    }

    /// A socket inside the namespace open at `namespace`; it stays there whichever thread uses it.
    public init(namespace: FileDescriptor) throws {
        descriptor = try NetlinkSyscall.open(protocol: ATOLL_NETLINK_ROUTE, namespace: namespace)
    }

    public func send(_ bytes: [UInt8]) throws { try NetlinkSyscall.send(descriptor, bytes) }

    public func receive() throws -> [UInt8] { try NetlinkSyscall.receive(descriptor) }
}
