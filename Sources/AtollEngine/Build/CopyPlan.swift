import AtollBuild
import AtollCore
import AtollRuntime
import AtollStorage
import CAtollShim
import Foundation
import Glibc

/// One COPY or ADD, resolved: which sources, where to, with which owner and mode. Sources are
/// found inside their root (symlinks followed, never out of it); everything below a source is
/// copied without following a symlink; the destination resolves inside the image's root.
struct CopyPlan: Sendable {
    var keyword: String
    /// Paths or patterns relative to the source root, and heredoc names.
    var sources: [String]
    var heredocs: [Heredoc]
    /// Absolute, inside the image.
    var destination: String
    var chown: String?
    var chmod: mode_t?
    /// ADD: local tar archives (plain, gzip or zstd) are unpacked into the destination.
    var extractArchives: Bool
    /// COPY --from keeps owners; files from the context belong to root, as in Docker.
    var keepOwners: Bool

    /// One matched source: its path relative to the root, opened (Int32(ATOLL_O_PATH)) where it resolved.
    struct Match {
        var path: String
        var file: FileDescriptor
        var status: stat
    }

    /// A digest of everything the sources hold (names, types, modes, sizes, contents, link
    /// targets): the same digest means COPY would write the same files.
    func digest(sourceRoot: String) throws -> Digest {
        var hasher = DigestHasher()
        for heredoc in heredocs { hasher.update(Array("heredoc \(heredoc.name)\n\(heredoc.content)\u{0}".utf8)) }
        try withMatches(in: sourceRoot) { matches in
            for match in matches {
                hasher.update(Array("source \(match.path)\u{0}".utf8))
                try TreeDigest.add(match.file, status: match.status, name: ".", to: &hasher)
            }
        }
        return hasher.finalize()
    }

    /// Copies the sources into the image's root mounted at `root`. A directory source gives its
    /// contents; several sources, or a destination ending in "/" or naming a directory, put each
    /// one inside the destination; a single file onto another path takes that name.
    func copy(from sourceRoot: String, into root: String) throws {
        let rootFD = try Syscall.open(root, flags: O_RDONLY | O_DIRECTORY)
        defer { rootFD.close() }
        let owner = try resolveOwner(root: root)
        let copier = FileCopier(root: rootFD.rawValue, owner: owner ?? (keepOwners ? nil : (0, 0)), mode: chmod)
        func directory(_ path: String) throws -> FileDescriptor {
            try RootedPath.makeDirectories(path, in: rootFD, owner: owner)
        }
        try withMatches(in: sourceRoot) { matches in
            let existingDirectory =
                (try? Syscall.openat2(
                    rootFD.rawValue, destination, flags: O_RDONLY | O_DIRECTORY, resolve: RootedPath.inRoot))?.close()
                != nil
            let intoDirectory = destination.hasSuffix("/") || matches.count + heredocs.count > 1 || existingDirectory
            let (parentPath, fileName): (String, String?) =
                intoDirectory ? (destination, nil) : Self.split(destination)
            for heredoc in heredocs {
                let parent = try directory(parentPath)
                defer { parent.close() }
                try copier.writeFile(heredoc.content, named: fileName ?? heredoc.name, in: parent)
            }
            for match in matches {
                if match.status.st_mode & S_IFMT == S_IFDIR {
                    let target = try directory(destination)
                    defer { target.close() }
                    let source = try Syscall.open("/proc/self/fd/\(match.file.rawValue)", flags: O_RDONLY | O_DIRECTORY)
                    defer { source.close() }
                    try copier.copyContents(of: source, into: target, at: destination)
                } else if match.status.st_mode & S_IFMT != S_IFREG {
                    // A fifo, socket or device named as a source is never opened (a fifo would
                    // block, a device would act), and Docker copies none of them either.
                    continue
                } else if extractArchives, let archive = try ArchiveCheck.openIfArchive(match.file) {
                    defer { archive.close() }
                    let target = try directory(destination)
                    defer { target.close() }
                    try Layer.apply(from: archive, toDirectory: "/proc/self/fd/\(target.rawValue)", whiteouts: .plain)
                } else {
                    let parent = try directory(parentPath)
                    defer { parent.close() }
                    let name = fileName ?? String(match.path.split(separator: "/").last ?? "")
                    try copier.copyFile(match.file, status: match.status, named: name, into: parent)
                }
            }
        }
    }

    /// `--chown=user[:group]`, looked up in the image's own /etc/passwd and /etc/group.
    private func resolveOwner(root: String) throws -> (uid_t, gid_t)? {
        guard let chown else { return nil }
        do {
            let user = try UserLookup.resolve(chown, rootfs: root)
            return (user.uid, user.gid)
        } catch {
            throw AtollError.invalidArgument("invalid --chown=\(chown): \(error)")
        }
    }

    /// Every path the sources name (patterns expanded), opened; a source that matches nothing is
    /// an error naming it.
    private func withMatches(in sourceRoot: String, _ body: ([Match]) throws -> Void) throws {
        let root = try Syscall.open(sourceRoot, flags: O_RDONLY | O_DIRECTORY)
        defer { root.close() }
        var matches: [Match] = []
        defer { for match in matches { match.file.close() } }
        let heredocNames = Set(heredocs.map(\.name))
        for source in sources where !heredocNames.contains(source) {
            var components: [Substring] = []
            for component in source.split(separator: "/") where component != "." {
                if component == ".." {
                    guard components.popLast() != nil else {
                        throw AtollError.invalidArgument("\(keyword) \(source): the path is outside the build context")
                    }
                } else {
                    components.append(component)
                }
            }
            let paths = try Glob.expand(components.map(String.init), in: root)
            guard !paths.isEmpty else {
                throw AtollError.notFound("\(keyword) \(source): no such file or directory in the source")
            }
            for path in paths {
                let file: FileDescriptor
                do {
                    file = try Syscall.openat2(
                        root.rawValue, path.isEmpty ? "." : path, flags: Int32(ATOLL_O_PATH), resolve: RootedPath.inRoot
                    )
                } catch {
                    throw AtollError.notFound("\(keyword) \(source): \(path) cannot be opened in the source")
                }
                matches.append(Match(path: path, file: file, status: try Syscall.stat(fd: file.rawValue)))
            }
        }
        try body(matches)
    }

    static func split(_ path: String) -> (String, String) {
        var components = path.split(separator: "/").map(String.init)
        let name = components.popLast() ?? ""
        return ("/" + components.joined(separator: "/"), name)
    }
}

/// Source patterns (`*.txt`, `src/*/main.c`) matched component by component, as Go's filepath.Match.
enum Glob {
    static func isPattern(_ component: String) -> Bool { component.contains { "*?[\\".contains($0) } }

    /// The relative paths under `root` that `components` match, sorted.
    static func expand(_ components: [String], in root: FileDescriptor) throws -> [String] {
        guard components.contains(where: isPattern) else {
            let path = components.joined(separator: "/")
            let exists =
                (try? Syscall.openat2(
                    root.rawValue, path.isEmpty ? "." : path, flags: Int32(ATOLL_O_PATH), resolve: RootedPath.inRoot))?
                .close() != nil
            return exists ? [path] : []
        }
        var found: [String] = [""]
        for component in components {
            var next: [String] = []
            for prefix in found {
                if !isPattern(component) {
                    let path = prefix.isEmpty ? component : "\(prefix)/\(component)"
                    let exists =
                        (try? Syscall.openat2(
                            root.rawValue, path, flags: Int32(ATOLL_O_PATH), resolve: RootedPath.inRoot))?.close()
                        != nil
                    if exists { next.append(path) }
                    continue
                }
                for name in try list(prefix, in: root) where fnmatch(component, name, 0) == 0 {
                    next.append(prefix.isEmpty ? name : "\(prefix)/\(name)")
                }
            }
            found = next
        }
        return found.sorted()
    }

    private static func list(_ path: String, in root: FileDescriptor) throws -> [String] {
        guard
            let directory = try? Syscall.openat2(
                root.rawValue, path.isEmpty ? "." : path, flags: O_RDONLY | O_DIRECTORY, resolve: RootedPath.inRoot)
        else { return [] }
        defer { directory.close() }
        return try FileSystem.listDirectory(directory).map(\.name)
    }
}
