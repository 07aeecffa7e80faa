import AtollCore
import CAtollShim
import Glibc

/// Paths inside a root file system a build writes to, resolved as the container would see them
/// (symlinks followed, but never out of the root).
enum RootedPath {
    static let inRoot = UInt64(ATOLL_RESOLVE_IN_ROOT | ATOLL_RESOLVE_NO_MAGICLINKS | ATOLL_RESOLVE_NO_XDEV)

    /// Opens the directory `path` under `root`, creating what is missing (`mkdir -p`; new
    /// directories get mode 0755 and `owner`, when given).
    static func makeDirectories(_ path: String, in root: FileDescriptor, owner: (uid_t, gid_t)?) throws
        -> FileDescriptor
    {
        var current = try Syscall.openat2(root.rawValue, ".", flags: O_RDONLY | O_DIRECTORY, resolve: inRoot)
        var walked = ""
        for component in path.split(separator: "/") where component != "." {
            walked += "/\(component)"
            if component == ".." {
                current = try Syscall.openat2(
                    root.rawValue, String(walked.dropFirst()), flags: O_RDONLY | O_DIRECTORY, resolve: inRoot)
                continue
            }
            let name = String(component)
            if mkdirat(current.rawValue, name, 0o755) == 0, let owner {
                fchownat(current.rawValue, name, owner.0, owner.1, AT_SYMLINK_NOFOLLOW)
            }
            do {
                let next = try Syscall.openat2(
                    root.rawValue, String(walked.dropFirst()), flags: O_RDONLY | O_DIRECTORY, resolve: inRoot)
                current.close()
                current = next
            } catch {
                current.close()
                if error.errno == ENOTDIR {
                    throw AtollError.invalidArgument("\(walked) exists and is not a directory")
                }
                throw AtollError(.internalError, "cannot create directory \(walked)", cause: error)
            }
        }
        return current
    }
}
