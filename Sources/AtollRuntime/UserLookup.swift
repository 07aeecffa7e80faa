import AtollCore
import CAtollShim
import Glibc

/// The identity a container process runs as.
public struct ResolvedUser: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var additionalGids: [UInt32]
    /// The home directory from /etc/passwd, or "/" when the user has no entry.
    public var home: String
}

/// Resolves `-u user[:group]` against the image's /etc/passwd and /etc/group, the way runc and
/// Docker do. The files are opened with openat2(RESOLVE_IN_ROOT): a symlink planted in the image
/// (say /etc/passwd → /etc/shadow of the host) resolves inside the container's root, never outside.
public enum UserLookup {
    struct PasswdEntry: Equatable {
        var name: String
        var uid: UInt32
        var gid: UInt32
        var home: String
    }

    struct GroupEntry: Equatable {
        var name: String
        var gid: UInt32
        var members: [String]
    }

    /// Resolves `spec` (empty: root) inside the root file system at `rootfs`.
    public static func resolve(_ spec: String, rootfs: String) throws -> ResolvedUser {
        let passwd = readInRoot(rootfs, "etc/passwd").map(parsePasswd) ?? []
        let groups = readInRoot(rootfs, "etc/group").map(parseGroup) ?? []
        return try resolve(spec, passwd: passwd, groups: groups)
    }

    static func resolve(_ spec: String, passwd: [PasswdEntry], groups: [GroupEntry]) throws -> ResolvedUser {
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let userPart = parts.first ?? ""
        let groupPart = parts.count > 1 ? parts[1] : nil
        var user = ResolvedUser(uid: 0, gid: 0, additionalGids: [], home: "/")
        var userName: String?
        if userPart.isEmpty {
            if let root = passwd.first(where: { $0.uid == 0 }) {
                user.gid = root.gid
                user.home = root.home
                userName = root.name
            }
        } else if let entry = passwd.first(where: { $0.name == userPart }) {
            user.uid = entry.uid
            user.gid = entry.gid
            user.home = entry.home
            userName = entry.name
        } else if let uid = UInt32(userPart) {
            user.uid = uid
            if let entry = passwd.first(where: { $0.uid == uid }) {
                user.gid = entry.gid
                user.home = entry.home
                userName = entry.name
            }
        } else {
            throw AtollError.invalidArgument(
                "unable to find user \(userPart): no matching entries in the image's /etc/passwd")
        }
        if let groupPart {
            if let entry = groups.first(where: { $0.name == groupPart }) {
                user.gid = entry.gid
            } else if let gid = UInt32(groupPart) {
                user.gid = gid
            } else {
                throw AtollError.invalidArgument(
                    "unable to find group \(groupPart): no matching entries in the image's /etc/group")
            }
        } else if let userName {
            // Supplementary groups come from /etc/group membership, as runc computes them.
            user.additionalGids = groups.filter { $0.members.contains(userName) && $0.gid != user.gid }.map(\.gid)
        }
        return user
    }

    static func parsePasswd(_ text: String) -> [PasswdEntry] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7, let uid = UInt32(fields[2]), let gid = UInt32(fields[3]) else { return nil }
            return PasswdEntry(name: String(fields[0]), uid: uid, gid: gid, home: String(fields[5]))
        }
    }

    static func parseGroup(_ text: String) -> [GroupEntry] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 4, let gid = UInt32(fields[2]) else { return nil }
            let members = fields[3].split(separator: ",").map { String($0) }
            return GroupEntry(name: String(fields[0]), gid: gid, members: members)
        }
    }

    /// Reads a small file at `path` inside `root`, resolving every symlink within the root.
    /// nil when it does not exist or cannot be read as a regular file.
    static func readInRoot(_ root: String, _ path: String) -> String? {
        // Opened as a path first: a FIFO or device planted at /etc/passwd must not be opened
        // (a FIFO would block the start forever), only a regular file is read.
        guard let rootFD = try? Syscall.open(root, flags: O_RDONLY | O_DIRECTORY),
            let handle = try? Syscall.openat2(
                rootFD.rawValue, path, flags: ATOLL_O_PATH,
                resolve: UInt64(ATOLL_RESOLVE_IN_ROOT | ATOLL_RESOLVE_NO_MAGICLINKS)),
            let info = try? Syscall.stat(fd: handle.rawValue), (info.st_mode & S_IFMT) == S_IFREG,
            let fd = try? Syscall.open("/proc/self/fd/\(handle.rawValue)", flags: O_RDONLY | O_NOCTTY | O_NONBLOCK),
            let bytes = try? fd.readAll(limit: 4 << 20)
        else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
