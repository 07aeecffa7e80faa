import AtollCore
import CAtollShim
import Glibc

/// Mount targets inside a container's root file system. A target is resolved as the container
/// would resolve it — a symlink in the image, absolute or full of "..", stays inside the root —
/// then created where missing, and handed to the runtime as a path with no symlink left in it.
/// So an image cannot aim a mount at the host (CVE-2021-30465, CVE-2022-23648).
public enum MountTarget {
    /// Resolves `target` inside `rootfs`, creating the missing components (directories, and an
    /// empty file at the end when `file` is true). Returns the resolved absolute path inside the
    /// container.
    public static func prepare(_ target: String, in rootfs: String, file: Bool = false) throws -> String {
        let root = try openRoot(rootfs)
        let components = try resolve(target, root: root.rawValue)
        guard !components.isEmpty else {
            throw AtollError.invalidArgument("mount target \"\(target)\" resolves to the container's root \"/\"")
        }
        var parent = try Syscall.openat2(root.rawValue, ".", flags: ATOLL_O_PATH | O_DIRECTORY, resolve: beneath)
        for (index, name) in components.enumerated() {
            let isLast = index == components.count - 1
            let wantFile = isLast && file
            var st = stat()
            if fstatat(parent.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
                let err = atoll_errno()
                guard err == ENOENT else {
                    throw failure(
                        target, "cannot inspect \"\(name)\"", SystemCallError(call: "stat", subject: name, errno: err))
                }
                do {
                    if wantFile {
                        _ = try Syscall.openat(
                            name, at: parent.rawValue, flags: O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY, mode: 0o644)
                    } else {
                        try Syscall.mkdir(name, at: parent.rawValue, mode: 0o755)
                    }
                } catch {
                    throw failure(target, "cannot create \"\(name)\"", error)
                }
            } else if st.st_mode & S_IFMT == S_IFLNK {
                // Resolved a moment ago without a link here: the tree changed under us.
                throw AtollError.invalidArgument("mount target \"\(target)\": \"\(name)\" became a symbolic link")
            } else if !isLast && st.st_mode & S_IFMT != S_IFDIR {
                throw AtollError.invalidArgument(
                    "mount target \"\(target)\": \"\(components[...index].joined(separator: "/"))\" is not a directory")
            }
            if !isLast {
                parent = try Syscall.openat2(
                    parent.rawValue, name, flags: ATOLL_O_PATH | O_DIRECTORY, resolve: beneath)
            }
        }
        // Whatever happened meanwhile, the final path must be symlink-free and beneath the root.
        let joined = components.joined(separator: "/")
        do {
            _ = try Syscall.openat2(root.rawValue, joined, flags: ATOLL_O_PATH, resolve: beneath)
        } catch {
            throw failure(target, "\"\(joined)\" cannot be reached without symbolic links", error)
        }
        return "/" + joined
    }

    /// Opens the directory at `path` (already resolved by `prepare`) inside `rootfs` for reading,
    /// following no symlink; nil when it is missing or not a directory.
    public static func openDirectory(_ path: String, in rootfs: String) -> FileDescriptor? {
        guard let root = try? openRoot(rootfs) else { return nil }
        let relative = path.split(separator: "/").joined(separator: "/")
        return try? Syscall.openat2(
            root.rawValue, relative.isEmpty ? "." : relative, flags: O_RDONLY | O_DIRECTORY, resolve: beneath)
    }

    /// The components of `target` with every symlink expanded inside the root (an absolute link
    /// restarts from the root, ".." stops at it). Components past the first missing one are
    /// taken as they are.
    static func resolve(_ target: String, root: Int32) throws -> [String] {
        var pending = target.split(separator: "/").map(String.init)
        var resolved: [String] = []
        var links = 0
        var missing = false
        while !pending.isEmpty {
            let name = pending.removeFirst()
            if name == "." || name.isEmpty { continue }
            if name == ".." {
                _ = resolved.popLast()
                continue
            }
            if missing {
                resolved.append(name)
                continue
            }
            let parentPath = resolved.isEmpty ? "." : resolved.joined(separator: "/")
            let parent = try Syscall.openat2(root, parentPath, flags: ATOLL_O_PATH | O_DIRECTORY, resolve: beneath)
            var st = stat()
            guard fstatat(parent.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                let err = atoll_errno()
                guard err == ENOENT else {
                    throw failure(
                        target, "cannot inspect \"\(name)\"", SystemCallError(call: "stat", subject: name, errno: err))
                }
                missing = true
                resolved.append(name)
                continue
            }
            if st.st_mode & S_IFMT == S_IFLNK {
                links += 1
                guard links <= 40 else {
                    throw AtollError.invalidArgument("mount target \"\(target)\": too many levels of symbolic links")
                }
                let link = try Syscall.readlink(name, at: parent.rawValue)
                if link.hasPrefix("/") { resolved = [] }
                pending = link.split(separator: "/").map(String.init) + pending
                continue
            }
            if !pending.isEmpty && st.st_mode & S_IFMT != S_IFDIR {
                throw AtollError.invalidArgument(
                    "mount target \"\(target)\": \"/\((resolved + [name]).joined(separator: "/"))\" is not a directory")
            }
            resolved.append(name)
        }
        return resolved
    }

    static let beneath = UInt64(ATOLL_RESOLVE_BENEATH | ATOLL_RESOLVE_NO_SYMLINKS | ATOLL_RESOLVE_NO_MAGICLINKS)

    private static func openRoot(_ rootfs: String) throws -> FileDescriptor {
        do {
            return try Syscall.open(rootfs, flags: ATOLL_O_PATH | O_DIRECTORY)
        } catch {
            throw AtollError.internalError("cannot open the container's root \(rootfs)", cause: error)
        }
    }

    private static func failure(_ target: String, _ what: String, _ error: any Error) -> AtollError {
        AtollError.invalidArgument("mount target \"\(target)\": \(what)", cause: error)
    }
}
