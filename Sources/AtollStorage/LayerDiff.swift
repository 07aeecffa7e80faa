import AtollCore
import AtollOCI
import CArchive
import CAtollShim
import Glibc

extension Layer {
    /// Writes the changes of the snapshot `upper` over `lower` to `output` as a layer: a PAX tar,
    /// compressed as asked. Returns the diffID (sha256 of the tar) and the digest and size of
    /// what was written.
    ///
    /// - An overlay `upper` (an overlay mount with an `upperdir`) is read from its upper directory
    ///   alone: 0/0 character devices become `.wh.<name>` entries, directories with
    ///   `trusted.overlay.opaque=y` are followed by `<dir>/.wh..wh..opq`. `lower` is not needed.
    /// - A bind `upper` (native driver) is compared with `lower` (a bind mount's source; no mounts
    ///   means an empty tree), see `diff(lowerDirectory:upperDirectory:to:compression:)`.
    public static func diff(lower: [Mount], upper: [Mount], to output: FileDescriptor, compression: LayerCompression)
        throws -> AppliedLayer
    {
        guard upper.count == 1, let mount = upper.first else {
            throw AtollError(.unsupported, "cannot diff a snapshot of \(upper.count) mounts: want exactly one")
        }
        switch mount.type {
        case "overlay":
            guard let upperDirectory = mount.option("upperdir") else {
                throw AtollError.failedPrecondition("cannot diff an overlay without an upperdir")
            }
            return try diff(overlayUpperDirectory: upperDirectory, to: output, compression: compression)
        case "bind":
            var lowerDirectory: String?
            if let view = lower.first {
                guard lower.count == 1 else {
                    throw AtollError(.unsupported, "cannot diff against \(lower.count) lower mounts: want at most one")
                }
                switch view.type {
                case "bind": lowerDirectory = view.source
                case "overlay" where view.option("upperdir") == nil && !(view.option("lowerdir") ?? "").contains(":"):
                    lowerDirectory = view.option("lowerdir")
                default:
                    throw AtollError(
                        .unsupported, "cannot diff against a lower mount of type \"\(view.type)\" with several layers")
                }
            }
            return try diff(
                lowerDirectory: lowerDirectory, upperDirectory: mount.source, to: output, compression: compression)
        default:
            throw AtollError(.unsupported, "cannot diff a mount of type \"\(mount.type)\"")
        }
    }

    /// The changes of an overlay upper directory as a layer.
    public static func diff(overlayUpperDirectory: String, to output: FileDescriptor, compression: LayerCompression)
        throws -> AppliedLayer
    {
        let differ = try LayerDiffer(upper: overlayUpperDirectory, lower: nil)
        try differ.collectOverlay()
        return try differ.write(to: output, compression: compression)
    }

    /// The changes between two full trees (the native driver) as a layer. An entry is changed
    /// when its type, mode, owner, device number, link target, extended attributes or
    /// modification time differ, or for regular files its size; files equal in all of these are
    /// compared byte by byte only when their mtime has zero nanoseconds (a file system or copy
    /// that keeps only seconds could hide a change made within the same second), as containerd
    /// does. Deleted entries become whiteouts; parents of changed entries are included.
    public static func diff(
        lowerDirectory: String?, upperDirectory: String, to output: FileDescriptor, compression: LayerCompression
    ) throws -> AppliedLayer {
        let differ = try LayerDiffer(upper: upperDirectory, lower: lowerDirectory)
        try differ.collectNative()
        return try differ.write(to: output, compression: compression)
    }
}

/// Walks trees and writes the layer. Internal: `Layer.diff` is the entry point.
final class LayerDiffer {
    struct Item {
        enum Kind { case node, whiteout, opaque }
        var path: String
        var kind: Kind
        var st = stat()
        var symlink: String?
        var hardlink: String?
        var xattrs: [(name: String, value: [UInt8])] = []
    }

    struct InodeKey: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private let upper: FileDescriptor
    private let upperPath: String
    private let lower: FileDescriptor?
    private var items: [Item] = []
    private var links: [InodeKey: String] = [:]
    private let bufferA: UnsafeMutableRawBufferPointer
    private let bufferB: UnsafeMutableRawBufferPointer

    init(upper: String, lower: String?) throws {
        upperPath = upper
        bufferA = .allocate(byteCount: 1 << 20, alignment: 64)
        bufferB = .allocate(byteCount: 1 << 20, alignment: 64)
        do {
            self.upper = try Syscall.open(upper, flags: O_RDONLY | O_DIRECTORY)
        } catch {
            throw AtollError(
                error.errno == ENOENT ? .notFound : .internalError, "cannot open upper directory \"\(upper)\"",
                cause: error)
        }
        if let lower {
            do {
                self.lower = try Syscall.open(lower, flags: O_RDONLY | O_DIRECTORY)
            } catch {
                throw AtollError(
                    error.errno == ENOENT ? .notFound : .internalError, "cannot open lower directory \"\(lower)\"",
                    cause: error)
            }
        } else {
            self.lower = nil
        }
    }

    deinit {
        bufferA.deallocate()
        bufferB.deallocate()
    }

    // MARK: - Collecting

    private struct Child {
        var name: String
        var emitted: String
        var st: stat
    }

    private func children(_ directory: FileDescriptor, path: String) throws -> [Child] {
        var result: [Child] = []
        for (name, _) in try FileSystem.listDirectory(directory) {
            let st: stat
            do { st = try Syscall.stat(name, at: directory.rawValue, followSymlinks: false) } catch {
                throw AtollError.internalError("cannot diff \"\(join(path, name))\"", cause: error)
            }
            result.append(Child(name: name, emitted: name, st: st))
        }
        return result
    }

    private func sortedByName(_ children: inout [Child]) {
        children.sort { $0.emitted.utf8.lexicographicallyPrecedes($1.emitted.utf8) }
    }

    func collectOverlay() throws {
        if try isOpaque(upper.rawValue, nil) { items.append(Item(path: ".wh..wh..opq", kind: .opaque)) }
        try walkOverlay(upper, path: "")
    }

    private func walkOverlay(_ directory: FileDescriptor, path: String) throws {
        var list = try children(directory, path: path)
        for index in list.indices where isWhiteout(list[index].st) { list[index].emitted = ".wh." + list[index].name }
        sortedByName(&list)
        for child in list {
            let childPath = join(path, child.name)
            if isWhiteout(child.st) {
                items.append(Item(path: join(path, child.emitted), kind: .whiteout))
                continue
            }
            try appendNode(directory, child, path: childPath)
            if child.st.st_mode & S_IFMT == S_IFDIR {
                let fd = try openDirectory(child.name, at: directory, path: childPath)
                if try isOpaque(fd.rawValue, nil) {
                    items.append(Item(path: join(childPath, ".wh..wh..opq"), kind: .opaque))
                }
                try walkOverlay(fd, path: childPath)
            }
        }
    }

    /// One entry of the upper directory and what is below it (nil: all its entries).
    func collectEntry(_ name: String?) throws {
        guard let name else { return try walkOverlay(upper, path: "") }
        let st: stat
        do { st = try Syscall.stat(name, at: upper.rawValue, followSymlinks: false) } catch {
            throw AtollError(
                error.errno == ENOENT ? .notFound : .internalError, "cannot read \"\(name)\"", cause: error)
        }
        try appendNode(upper, Child(name: name, emitted: name, st: st), path: name)
        if st.st_mode & S_IFMT == S_IFDIR {
            try walkOverlay(try openDirectory(name, at: upper, path: name), path: name)
        }
    }

    func collectNative() throws {
        try walkNative(upper: upper, lower: lower, path: "")
    }

    /// Appends the changes below one directory; returns whether there were any.
    @discardableResult
    private func walkNative(upper: FileDescriptor, lower: FileDescriptor?, path: String) throws -> Bool {
        var list = try children(upper, path: path)
        var lowerByName: [String: stat] = [:]
        if let lower {
            for child in try children(lower, path: path) { lowerByName[child.name] = child.st }
            let upperNames = Set(list.map(\.name))
            for (name, st) in lowerByName where !upperNames.contains(name) {
                list.append(Child(name: name, emitted: ".wh." + name, st: st))
            }
        }
        sortedByName(&list)
        let before = items.count
        for child in list {
            let childPath = join(path, child.name)
            if child.emitted != child.name {
                items.append(Item(path: join(path, child.emitted), kind: .whiteout))
                continue
            }
            let below = lowerByName[child.name]
            if child.st.st_mode & S_IFMT == S_IFDIR {
                let index = items.count
                let changed = try below.map { try !same(child, $0, upperDir: upper, lowerDir: lower) } ?? true
                try appendNode(upper, child, path: childPath)
                let upperChild = try openDirectory(child.name, at: upper, path: childPath)
                let lowerChild =
                    try below.flatMap { $0.st_mode & S_IFMT == S_IFDIR ? $0 : nil }.flatMap { _ in
                        try lower.map { try openDirectory(child.name, at: $0, path: childPath) }
                    }
                let childrenChanged = try walkNative(upper: upperChild, lower: lowerChild, path: childPath)
                if !changed && !childrenChanged { items.remove(at: index) }
            } else {
                let changed = try below.map { try !same(child, $0, upperDir: upper, lowerDir: lower) } ?? true
                if changed { try appendNode(upper, child, path: childPath) }
            }
        }
        return items.count > before
    }

    /// Whether an entry is unchanged between the lower and the upper tree.
    private func same(_ child: Child, _ below: stat, upperDir: FileDescriptor, lowerDir: FileDescriptor?) throws -> Bool
    {
        let a = child.st
        let b = below
        guard let lowerDir, a.st_mode == b.st_mode, a.st_uid == b.st_uid, a.st_gid == b.st_gid,
            a.st_mtim.tv_sec == b.st_mtim.tv_sec, a.st_mtim.tv_nsec == b.st_mtim.tv_nsec
        else { return false }
        switch a.st_mode & S_IFMT {
        case S_IFCHR, S_IFBLK: guard a.st_rdev == b.st_rdev else { return false }
        case S_IFREG: guard a.st_size == b.st_size else { return false }
        case S_IFLNK:
            guard
                try Syscall.readlink(child.name, at: upperDir.rawValue)
                    == Syscall.readlink(child.name, at: lowerDir.rawValue)
            else { return false }
        default: break
        }
        let upperXattrs = try readXattrs(procPath(upperDir.rawValue, child.name))
        let lowerXattrs = try readXattrs(procPath(lowerDir.rawValue, child.name))
        guard upperXattrs.map(\.name) == lowerXattrs.map(\.name), upperXattrs.map(\.value) == lowerXattrs.map(\.value)
        else { return false }
        if a.st_mode & S_IFMT == S_IFREG && a.st_mtim.tv_nsec == 0 {
            return try sameContent(child.name, upperDir, lowerDir)
        }
        return true
    }

    private func sameContent(_ name: String, _ upperDir: FileDescriptor, _ lowerDir: FileDescriptor) throws -> Bool {
        let a = try Syscall.openat(name, at: upperDir.rawValue, flags: O_RDONLY | O_NOFOLLOW)
        let b = try Syscall.openat(name, at: lowerDir.rawValue, flags: O_RDONLY | O_NOFOLLOW)
        while true {
            let n = try readFull(a, bufferA)
            let m = try readFull(b, bufferB)
            if n != m { return false }
            if n == 0 { return true }
            guard let pa = bufferA.baseAddress, let pb = bufferB.baseAddress, memcmp(pa, pb, n) == 0 else {
                return false
            }
        }
    }

    private func readFull(_ fd: FileDescriptor, _ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var total = 0
        while total < buffer.count {
            let n = try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[total...]))
            if n == 0 { break }
            total += n
        }
        return total
    }

    private func appendNode(_ directory: FileDescriptor, _ child: Child, path: String) throws {
        var item = Item(path: path, kind: .node, st: child.st)
        let type = child.st.st_mode & S_IFMT
        // A socket a process left behind has no place in a layer (tar cannot hold one): skipped, as Docker does.
        if type == S_IFSOCK { return }
        if type == S_IFLNK { item.symlink = try Syscall.readlink(child.name, at: directory.rawValue) }
        item.xattrs = try readXattrs(procPath(directory.rawValue, child.name))
        if type != S_IFDIR && child.st.st_nlink > 1 {
            let key = InodeKey(device: UInt64(child.st.st_dev), inode: UInt64(child.st.st_ino))
            if let first = links[key] { item.hardlink = first } else { links[key] = path }
        }
        items.append(item)
    }

    private func openDirectory(_ name: String, at directory: FileDescriptor, path: String) throws -> FileDescriptor {
        do { return try Syscall.openat(name, at: directory.rawValue, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW) } catch
        {
            throw AtollError.internalError("cannot diff directory \"\(path)\"", cause: error)
        }
    }

    private func isWhiteout(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0 }

    private func isOpaque(_ fd: Int32, _ name: String?) throws -> Bool {
        var value: [UInt8] = [0, 0]
        let n = atoll_fgetxattr(fd, "trusted.overlay.opaque", &value, value.count)
        return n == 1 && value[0] == UInt8(ascii: "y")
    }

    /// The extended attributes of a path (not following a final symlink), sorted by name,
    /// without overlayfs' own.
    private func readXattrs(_ path: String) throws -> [(name: String, value: [UInt8])] {
        var names = [CChar](repeating: 0, count: 4096)
        var length = atoll_llistxattr(path, &names, names.count)
        if length < 0 && atoll_errno() == ERANGE {
            let needed = atoll_llistxattr(path, nil, 0)
            if needed > 0 {
                names = [CChar](repeating: 0, count: needed)
                length = atoll_llistxattr(path, &names, names.count)
            }
        }
        if length < 0 {
            let err = atoll_errno()
            if err == EOPNOTSUPP { return [] }
            throw AtollError.internalError(
                "cannot list extended attributes of \"\(path)\"",
                cause: SystemCallError(call: "llistxattr", subject: path, errno: err))
        }
        if length == 0 { return [] }
        var result: [(String, [UInt8])] = []
        var start = 0
        for index in 0..<length where names[index] == 0 {
            let name = names[start..<index].withUnsafeBufferPointer { buffer in
                String(decoding: UnsafeRawBufferPointer(buffer), as: UTF8.self)
            }
            start = index + 1
            if name.isEmpty || name.hasPrefix("trusted.overlay.") || name.hasPrefix("user.overlay.") { continue }
            var size = atoll_lgetxattr(path, name, nil, 0)
            guard size >= 0 else { continue }  // removed meanwhile
            var value = [UInt8](repeating: 0, count: size)
            size = atoll_lgetxattr(path, name, &value, value.count)
            guard size >= 0 else { continue }
            result.append((name, Array(value[0..<size])))
        }
        return result.sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
    }

    private func join(_ path: String, _ name: String) -> String { path.isEmpty ? name : path + "/" + name }

    // MARK: - Writing

    func write(to output: FileDescriptor, compression: LayerCompression) throws -> AppliedLayer {
        let stream = try TarOutputStream(output: output, compression: compression)
        guard let archive = archive_write_new() else {
            throw AtollError(.resourceExhausted, "cannot start a tar writer: out of memory")
        }
        defer { archive_write_free(archive) }
        guard let entry = archive_entry_new() else {
            throw AtollError(.resourceExhausted, "cannot start a tar writer: out of memory")
        }
        defer { archive_entry_free(entry) }
        func failure(_ context: String) -> any Error {
            stream.pendingError ?? AtollError.internalError("\(context): \(archiveErrorText(archive))")
        }
        archive_write_set_format_pax(archive)
        archive_write_set_options(archive, "xattrheader=SCHILY")
        archive_write_set_bytes_per_block(archive, 1 << 20)
        archive_write_set_bytes_in_last_block(archive, 1)
        try withExtendedLifetime(stream) {
            guard
                archive_write_open(archive, Unmanaged.passUnretained(stream).toOpaque(), nil, tarWriteCallback, nil)
                    == ARCHIVE_OK
            else { throw failure("cannot start writing the layer") }
            for item in items {
                archive_entry_clear(entry)
                archive_entry_set_pathname(entry, item.path)
                switch item.kind {
                case .whiteout, .opaque:
                    archive_entry_set_mode(entry, S_IFREG | 0o644)
                    archive_entry_set_size(entry, 0)
                    archive_entry_set_mtime(entry, 0, 0)
                case .node:
                    let st = item.st
                    archive_entry_set_mode(entry, st.st_mode)
                    archive_entry_set_uid(entry, la_int64_t(st.st_uid))
                    archive_entry_set_gid(entry, la_int64_t(st.st_gid))
                    archive_entry_set_mtime(entry, st.st_mtim.tv_sec, st.st_mtim.tv_nsec)
                    if let link = item.symlink { archive_entry_set_symlink(entry, link) }
                    if st.st_mode & S_IFMT == S_IFCHR || st.st_mode & S_IFMT == S_IFBLK {
                        archive_entry_set_rdevmajor(entry, dev_t(atoll_major(st.st_rdev)))
                        archive_entry_set_rdevminor(entry, dev_t(atoll_minor(st.st_rdev)))
                    }
                    if let target = item.hardlink {
                        archive_entry_set_hardlink(entry, target)
                        archive_entry_set_size(entry, 0)
                    } else if st.st_mode & S_IFMT == S_IFREG {
                        archive_entry_set_size(entry, la_int64_t(st.st_size))
                    }
                    for (name, value) in item.xattrs {
                        value.withUnsafeBytes { archive_entry_xattr_add_entry(entry, name, $0.baseAddress, $0.count) }
                    }
                }
                let rc = archive_write_header(archive, entry)
                guard rc == ARCHIVE_OK || rc == ARCHIVE_WARN else {
                    throw failure("cannot write entry \"\(item.path)\"")
                }
                if item.kind == .node && item.hardlink == nil && item.st.st_mode & S_IFMT == S_IFREG {
                    try writeContent(item, archive: archive, failure: failure)
                }
            }
            guard archive_write_close(archive) == ARCHIVE_OK else { throw failure("cannot finish the layer") }
        }
        return try stream.finish()
    }

    private func writeContent(_ item: Item, archive: OpaquePointer, failure: (String) -> any Error) throws {
        let fd: FileDescriptor
        do {
            fd = try Syscall.openat2(
                upper.rawValue, item.path, flags: O_RDONLY | O_NOFOLLOW, resolve: beneathNoSymlinks)
        } catch {
            throw AtollError.failedPrecondition("cannot read \"\(item.path)\" in \"\(upperPath)\": \(error)")
        }
        var remaining = Int64(item.st.st_size)
        while remaining > 0 {
            let n = try fd.read(
                into: UnsafeMutableRawBufferPointer(rebasing: bufferA[0..<Int(min(remaining, Int64(bufferA.count)))]))
            if n == 0 {
                throw AtollError.failedPrecondition(
                    "file \"\(item.path)\" in \"\(upperPath)\" shrank while the layer was written")
            }
            guard archive_write_data(archive, bufferA.baseAddress, n) == n else {
                throw failure("cannot write the data of \"\(item.path)\"")
            }
            remaining -= Int64(n)
        }
    }
}
