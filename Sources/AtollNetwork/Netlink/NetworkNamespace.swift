import AtollCore
import CAtollShim

/// A network namespace pinned at a path (a bind mount of its nsfs file), like `ip netns add`.
public struct NetworkNamespace: Sendable, Hashable {
    public let path: String

    /// A namespace already pinned at `path` (or any nsfs file, such as /proc/PID/ns/net).
    public init(path: String) { self.path = path }

    /// Creates a new network namespace and pins it at `path` (the file is created; its parent
    /// directory must exist, and an existing file is an error). The namespace is entered only by a
    /// throwaway pthread, never by a Swift concurrency thread. Loopback is brought up inside.
    /// On any failure nothing is left behind (no file, no mount).
    public static func create(at path: String) throws -> NetworkNamespace {
        do {
            try NetlinkSyscall.createNetworkNamespace(at: path)
        } catch {
            throw RouteNetlink.mapped(errno: error.errno, "creating network namespace \"\(path)\"")
        }
        let namespace = NetworkNamespace(path: path)
        do {
            let netlink = try RouteNetlink(namespace: namespace)
            guard let loopback = try netlink.linkIndex(named: "lo") else {
                throw AtollError.notFound("loopback of network namespace \"\(path)\" not found")
            }
            try netlink.setUp(index: loopback)
        } catch {
            try? remove(at: path)
            throw error
        }
        return namespace
    }

    /// Unmounts (MNT_DETACH) and unlinks the namespace file; a path that does not exist, or that is
    /// not mounted, is not an error. The namespace itself goes away with its last user.
    public static func remove(at path: String) throws {
        // A path may carry stacked mounts; detach until none is left.
        for _ in 0..<8 {
            do {
                try Syscall.unmount(path, flags: ATOLL_MNT_DETACH)
            } catch {
                if error.errno == NetlinkErrno.invalid || error.errno == NetlinkErrno.noEntry { break }
                throw RouteNetlink.mapped(errno: error.errno, "unmounting network namespace \"\(path)\"")
            }
        }
        do {
            try Syscall.unlink(path, missingIsFine: true)
        } catch {
            throw RouteNetlink.mapped(errno: error.errno, "removing network namespace \"\(path)\"")
        }
    }

    /// Opens the namespace file O_RDONLY|O_CLOEXEC (for IFLA_NET_NS_FD or setns).
    public func open() throws -> FileDescriptor {
        do {
            return try Syscall.open(path, flags: 0)  // O_RDONLY; O_CLOEXEC is added
        } catch {
            throw RouteNetlink.mapped(errno: error.errno, "opening network namespace \"\(path)\"")
        }
    }
}
