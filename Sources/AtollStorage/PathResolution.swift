import AtollCore
import CAtollShim
import Glibc

/// Turns a name from a layer into clean components relative to the root: a leading "/" is
/// dropped (as Docker does), empty and "." components vanish, ".." removes the previous
/// component, and a ".." that would climb above the root is an error.
func cleanLayerPath(_ name: String, subject: String) throws -> [Substring] {
    var components: [Substring] = []
    for component in name.split(separator: "/", omittingEmptySubsequences: true) {
        if component == "." { continue }
        if component == ".." {
            guard !components.isEmpty else {
                throw AtollError.invalidArgument("\(subject) escapes the root")
            }
            components.removeLast()
            continue
        }
        components.append(component)
    }
    return components
}

/// Flags that keep a path walk inside the root and off every symlink.
let beneathNoSymlinks = UInt64(ATOLL_RESOLVE_BENEATH | ATOLL_RESOLVE_NO_SYMLINKS | ATOLL_RESOLVE_NO_MAGICLINKS)

/// Opens directories beneath a root descriptor without ever following a symlink, creating
/// missing ones when asked. Remembers the last directory it opened, since tar entries come
/// grouped by directory; `invalidate()` must be called whenever a directory is removed.
final class PathResolver {
    let root: FileDescriptor
    let rootPath: String
    private var cachedPath: String?
    private var cachedFD: FileDescriptor?
    /// Called after the resolver created a missing directory (components up to it, its fd).
    var onCreateDirectory: ((ArraySlice<Substring>, FileDescriptor) throws -> Void)?
    /// Called before creating a missing directory, to veto it (e.g. a symlink below in overlay).
    var beforeCreateDirectory: ((ArraySlice<Substring>) throws -> Void)?

    init(rootPath: String) throws {
        self.rootPath = rootPath
        do {
            root = try Syscall.open(rootPath, flags: O_RDONLY | O_DIRECTORY)
        } catch {
            throw AtollError(
                error.errno == ENOENT ? .notFound : .internalError, "cannot open layer root \"\(rootPath)\"",
                cause: error)
        }
    }

    func invalidate() {
        cachedPath = nil
        cachedFD = nil
    }

    /// The directory holding the entry `components` (all but the last). Returns nil when it does
    /// not exist and `create` is false. The descriptor is borrowed: valid until the next call.
    func parent(of components: ArraySlice<Substring>, subject: String, create: Bool) throws -> Int32? {
        let parent = components.dropLast()
        if parent.isEmpty { return root.rawValue }
        let path = parent.joined(separator: "/")
        if let cachedPath, let cachedFD, cachedPath == path { return cachedFD.rawValue }
        guard let fd = try directory(parent, subject: subject, create: create) else { return nil }
        cachedPath = path
        cachedFD = fd
        return fd.rawValue
    }

    /// Opens the directory `components` (empty: the root) as an ATOLL_O_PATH descriptor the caller owns.
    /// Returns nil when it does not exist and `create` is false.
    func directory(_ components: ArraySlice<Substring>, subject: String, create: Bool) throws -> FileDescriptor? {
        do {
            return try Syscall.openat2(
                root.rawValue, components.isEmpty ? "." : components.joined(separator: "/"),
                flags: ATOLL_O_PATH | O_DIRECTORY, resolve: beneathNoSymlinks)
        } catch {
            // Walk step by step for a precise answer (and to create what is missing).
            return try walk(components, subject: subject, create: create)
        }
    }

    /// Opens the directory `components` one component at a time.
    func walk(_ components: ArraySlice<Substring>, subject: String, create: Bool) throws -> FileDescriptor? {
        var current: FileDescriptor? = nil
        var index = components.startIndex
        while index < components.endIndex {
            let name = String(components[index])
            let at = current?.rawValue ?? root.rawValue
            let prefix = components[components.startIndex...index]
            var st = stat()
            if fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
                let err = atoll_errno()
                guard err == ENOENT else {
                    throw AtollError.internalError(
                        "\(subject): cannot inspect parent \"\(prefix.joined(separator: "/"))\"",
                        cause: SystemCallError(call: "stat", subject: name, errno: err))
                }
                guard create else { return nil }
                try beforeCreateDirectory?(prefix)
                do { try Syscall.mkdir(name, at: at, mode: 0o755, existingIsFine: true) } catch {
                    throw AtollError(
                        error.errno == ENOSPC ? .resourceExhausted : .internalError,
                        "\(subject): cannot create parent \"\(prefix.joined(separator: "/"))\"",
                        cause: error)
                }
                let created = try openDirectory(name, at: at, subject: subject, prefix: prefix)
                try onCreateDirectory?(prefix, created)
                current = created
            } else {
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    current = try openDirectory(name, at: at, subject: subject, prefix: prefix)
                case S_IFLNK:
                    throw AtollError.invalidArgument(
                        "\(subject): parent \"\(prefix.joined(separator: "/"))\" is a symbolic link")
                default:
                    throw AtollError.invalidArgument(
                        "\(subject): parent \"\(prefix.joined(separator: "/"))\" is not a directory")
                }
            }
            index += 1
        }
        return current
    }

    private func openDirectory(_ name: String, at: Int32, subject: String, prefix: ArraySlice<Substring>) throws
        -> FileDescriptor
    {
        do {
            return try Syscall.openat(name, at: at, flags: ATOLL_O_PATH | O_DIRECTORY | O_NOFOLLOW)
        } catch {
            throw AtollError.invalidArgument(
                "\(subject): parent \"\(prefix.joined(separator: "/"))\" is not a directory", cause: error)
        }
    }
}

/// A path through /proc that names `name` inside the directory open at `directory` without
/// following `name` if it is a symlink (for the l*xattr calls, which have no *at form).
func procPath(_ directory: Int32, _ name: String) -> String {
    "/proc/self/fd/\(directory)/\(name)"
}
