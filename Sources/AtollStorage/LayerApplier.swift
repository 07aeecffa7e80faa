import AtollCore
import CArchive
import CAtollShim
import Glibc

/// Unpacks one tar stream into a directory. Internal: `Layer.apply` is the entry point.
final class LayerApplier {
    private let resolver: PathResolver
    private let style: WhiteoutStyle
    private let limits: LayerLimits
    /// Open ATOLL_O_PATH descriptors of the overlay lower directories, nearest first.
    private let lowers: [FileDescriptor]
    /// Native style: every path this layer created (and their ancestors), for opaque markers.
    private var added: Set<String> = []
    private var lastAddedParent: String?
    /// Directories whose times are set at the end, after their children were written.
    private var directoryTimes: [(path: String, times: [timespec])] = []
    private var archive: OpaquePointer?
    private weak var stream: TarInputStream?

    init(root: String, style: WhiteoutStyle, limits: LayerLimits) throws {
        resolver = try PathResolver(rootPath: root)
        self.style = style
        self.limits = limits
        var lowers: [FileDescriptor] = []
        if case .overlay(let directories) = style {
            for directory in directories {
                do {
                    lowers.append(try Syscall.open(directory, flags: ATOLL_O_PATH | O_DIRECTORY))
                } catch {
                    throw AtollError(.notFound, "cannot open lower directory \"\(directory)\"", cause: error)
                }
            }
        }
        self.lowers = lowers
        if !lowers.isEmpty {
            resolver.beforeCreateDirectory = { [unowned self] components in try self.checkLowerParent(components) }
        }
        if style == .native {
            resolver.onCreateDirectory = { [unowned self] components, _ in
                self.added.insert(components.joined(separator: "/"))
            }
        }
    }

    private var isNative: Bool { style == .native }

    // MARK: - The loop

    func run(_ stream: TarInputStream) throws {
        guard let archive = archive_read_new() else {
            throw AtollError(.resourceExhausted, "cannot start a tar reader: out of memory")
        }
        defer { archive_read_free(archive) }
        self.archive = archive
        self.stream = stream
        archive_read_support_format_tar(archive)
        archive_read_support_format_gnutar(archive)
        let context = Unmanaged.passUnretained(stream).toOpaque()
        try withExtendedLifetime(stream) {
            guard archive_read_open(archive, context, nil, tarReadCallback, nil) == ARCHIVE_OK else {
                throw failure("layer is not a tar archive")
            }
            var count = 0
            while true {
                var entry: OpaquePointer?
                let rc = archive_read_next_header(archive, &entry)
                if rc == ARCHIVE_EOF { break }
                guard rc == ARCHIVE_OK || rc == ARCHIVE_WARN, let entry else {
                    throw failure(count == 0 ? "layer is not a tar archive" : "layer is corrupt after \(count) entries")
                }
                count += 1
                if count > limits.maxEntries {
                    throw AtollError(
                        .resourceExhausted, "layer has more than the limit of \(limits.maxEntries) entries")
                }
                try apply(entry)
            }
            try stream.drain()
        }
        try setDirectoryTimes()
    }

    /// The error to report when libarchive failed: one raised in our callback wins.
    private func failure(_ context: String) -> any Error {
        if let pending = stream?.pendingError { return pending }
        return AtollError.dataLoss("\(context): \(archiveErrorText(archive))")
    }

    // MARK: - One entry

    private func apply(_ entry: OpaquePointer) throws {
        guard let rawName = archive_entry_pathname(entry) ?? archive_entry_pathname_utf8(entry) else {
            throw AtollError.invalidArgument("layer has an entry without a name")
        }
        guard let name = String(validatingCString: rawName) else {
            throw AtollError(.unsupported, "layer entry \"\(String(cString: rawName))\": name is not valid utf-8")
        }
        let label = "layer entry \"\(name)\""
        guard name.utf8.count <= limits.maxPathLength else {
            throw AtollError.invalidArgument("\(label): name is longer than \(limits.maxPathLength) bytes")
        }
        let components = try cleanLayerPath(name, subject: "\(label): path")[...]
        guard let base = components.last else {
            // "/" or "./": the root itself. Only a directory may describe it.
            guard archive_entry_filetype(entry) == S_IFDIR, archive_entry_hardlink(entry) == nil else {
                throw AtollError.invalidArgument("\(label): only a directory may describe the root")
            }
            try setDirectoryMetadata(entry, fd: resolver.root.rawValue, label: label)
            directoryTimes.append(("", times(entry)))
            return
        }
        // AUFS metadata (.wh..wh.plnk and the like) is meaningless here: skip it, as Docker does.
        if style != .plain && components.contains(where: { $0.hasPrefix(".wh..wh.") && $0 != ".wh..wh..opq" }) {
            return
        }
        if style != .plain && base.hasPrefix(".wh.") {
            if base == ".wh..wh..opq" { return try opaque(components.dropLast(), label: label) }
            let target = base.dropFirst(4)
            guard !target.isEmpty else { throw AtollError.invalidArgument("\(label): whiteout names nothing") }
            guard target != ".", target != ".." else {
                throw AtollError.invalidArgument("\(label): whiteout names \"\(target)\"")
            }
            return try whiteout(components, target: String(target), label: label)
        }
        if let rawTarget = archive_entry_hardlink(entry) ?? archive_entry_hardlink_utf8(entry) {
            guard let target = String(validatingCString: rawTarget) else {
                throw AtollError(.unsupported, "\(label): hardlink target is not valid utf-8")
            }
            try hardlink(components, target: target, label: label)
            return noteAdded(components)
        }
        let type = archive_entry_filetype(entry)
        guard let parent = try resolver.parent(of: components, subject: label, create: true) else {
            throw AtollError.internalError("\(label): parent directory could not be created")
        }
        let file = String(base)
        switch type {
        case S_IFREG:
            try regularFile(entry, parent: parent, name: file, label: label)
        case S_IFDIR:
            try directory(entry, parent: parent, name: file, components: components, label: label)
        case S_IFLNK:
            guard let rawLink = archive_entry_symlink(entry) ?? archive_entry_symlink_utf8(entry),
                let link = String(validatingCString: rawLink)
            else { throw AtollError.invalidArgument("\(label): symbolic link without a valid target") }
            guard link.utf8.count <= limits.maxPathLength else {
                throw AtollError.invalidArgument("\(label): link target is longer than \(limits.maxPathLength) bytes")
            }
            try clearSlot(parent, file, keepDirectory: false, label: label)
            try check(symlinkat(link, parent, file), label, "cannot create symbolic link", "symlink")
            try setMetadata(entry, parent: parent, name: file, label: label, chmod: false)
        case S_IFCHR, S_IFBLK, S_IFIFO:
            try clearSlot(parent, file, keepDirectory: false, label: label)
            let major = UInt32(truncatingIfNeeded: archive_entry_rdevmajor(entry))
            let minor = UInt32(truncatingIfNeeded: archive_entry_rdevminor(entry))
            try check(
                atoll_mknodat(parent, file, type | 0o600, type == S_IFIFO ? 0 : major, type == S_IFIFO ? 0 : minor),
                label, "cannot create device node", "mknod")
            try setMetadata(entry, parent: parent, name: file, label: label, chmod: true)
        default:
            let kind = type == S_IFSOCK ? "socket" : "type 0o\(String(type, radix: 8))"
            throw AtollError(.unsupported, "\(label): entries of \(kind) are not supported")
        }
        noteAdded(components)
    }

    private func noteAdded(_ components: ArraySlice<Substring>) {
        guard isNative else { return }
        let parent = components.dropLast().joined(separator: "/")
        if parent != lastAddedParent {
            lastAddedParent = parent
            var prefix = ""
            for component in components.dropLast() {
                prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
                added.insert(prefix)
            }
        }
        added.insert(components.joined(separator: "/"))
    }

    // MARK: - Creating entries

    private func regularFile(_ entry: OpaquePointer, parent: Int32, name: String, label: String) throws {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = Glibc.openat(parent, name, flags, 0o600)
        if fd < 0 && atoll_errno() == EEXIST {
            try clearSlot(parent, name, keepDirectory: false, label: label)
            fd = Glibc.openat(parent, name, flags, 0o600)
        }
        try check(fd, label, "cannot create file", "open")
        defer { Glibc.close(fd) }
        var end: Int64 = 0
        var block: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        while true {
            let rc = archive_read_data_block(archive, &block, &size, &offset)
            if rc == ARCHIVE_EOF { break }
            guard rc == ARCHIVE_OK || rc == ARCHIVE_WARN else { throw failure("\(label): cannot read its data") }
            guard let block, size > 0 else { continue }
            var written = 0
            while written < size {
                let n = pwrite(fd, block + written, size - written, off_t(offset) + off_t(written))
                if n < 0 && atoll_errno() == EINTR { continue }
                try check(n, label, "cannot write file", "write")
                written += n
            }
            end = max(end, offset + Int64(size))
        }
        let declared = archive_entry_size(entry)
        if declared > end {
            // A sparse file ending in a hole.
            try check(ftruncate(fd, off_t(declared)), label, "cannot size file", "ftruncate")
        }
        let owner = try ownership(entry, label: label)
        try check(fchown(fd, owner.uid, owner.gid), label, "cannot change owner", "fchown")
        try check(fchmod(fd, archive_entry_perm(entry) & 0o7777), label, "cannot change mode", "fchmod")
        try setXattrs(entry, label: label) { atoll_fsetxattr(fd, $0, $1, $2) }
        var stamps = times(entry)
        try check(futimens(fd, &stamps), label, "cannot set times", "futimens")
    }

    private func directory(
        _ entry: OpaquePointer, parent: Int32, name: String, components: ArraySlice<Substring>, label: String
    ) throws {
        if mkdirat(parent, name, 0o700) != 0 {
            let err = atoll_errno()
            if err != EEXIST { try check(-1, label, "cannot create directory", "mkdir", errno: err) }
            if try clearSlot(parent, name, keepDirectory: true, label: label) == false {
                try check(mkdirat(parent, name, 0o700), label, "cannot create directory", "mkdir")
            }
        }
        let fd = Glibc.openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        try check(fd, label, "cannot open directory", "open")
        defer { Glibc.close(fd) }
        try setDirectoryMetadata(entry, fd: fd, label: label)
        directoryTimes.append((components.joined(separator: "/"), times(entry)))
    }

    private func setDirectoryMetadata(_ entry: OpaquePointer, fd: Int32, label: String) throws {
        let owner = try ownership(entry, label: label)
        try check(fchown(fd, owner.uid, owner.gid), label, "cannot change owner", "fchown")
        try check(fchmod(fd, archive_entry_perm(entry) & 0o7777), label, "cannot change mode", "fchmod")
        try setXattrs(entry, label: label) { atoll_fsetxattr(fd, $0, $1, $2) }
    }

    /// Owner, mode (unless a symlink), xattrs and times of a node that cannot be opened for writing.
    private func setMetadata(_ entry: OpaquePointer, parent: Int32, name: String, label: String, chmod: Bool) throws {
        let owner = try ownership(entry, label: label)
        try check(atoll_lchownat(parent, name, owner.uid, owner.gid), label, "cannot change owner", "lchown")
        if chmod {
            try check(
                fchmodat(parent, name, archive_entry_perm(entry) & 0o7777, 0), label, "cannot change mode", "chmod")
        }
        let path = procPath(parent, name)
        try setXattrs(entry, label: label) { atoll_lsetxattr(path, $0, $1, $2) }
        let stamps = times(entry)
        try check(
            atoll_utimensat_nofollow(
                parent, name, Int64(stamps[0].tv_sec), stamps[0].tv_nsec, Int64(stamps[1].tv_sec), stamps[1].tv_nsec),
            label, "cannot set times", "utimensat")
    }

    private func hardlink(_ components: ArraySlice<Substring>, target: String, label: String) throws {
        guard target.utf8.count <= limits.maxPathLength else {
            throw AtollError.invalidArgument("\(label): hardlink target is longer than \(limits.maxPathLength) bytes")
        }
        let targetComponents = try cleanLayerPath(target, subject: "\(label): hardlink target \"\(target)\"")[...]
        guard let targetBase = targetComponents.last else {
            throw AtollError.invalidArgument("\(label): hardlink target \"\(target)\" is the root")
        }
        let subject = "\(label): hardlink target \"\(target)\""
        guard targetComponents != components else {
            throw AtollError.invalidArgument("\(subject) is the entry itself")
        }
        var targetParent = try resolver.directory(targetComponents.dropLast(), subject: subject, create: false)
        var st = stat()
        if targetParent.map({ fstatat($0.rawValue, String(targetBase), &st, AT_SYMLINK_NOFOLLOW) }) != 0 {
            // Not in this directory: in overlay style it may exist in a lower layer; copy it up.
            guard try copyUp(targetComponents, subject: subject) else {
                throw AtollError.invalidArgument("\(subject) does not exist")
            }
            targetParent = try resolver.directory(targetComponents.dropLast(), subject: subject, create: false)
        }
        guard let targetParent else { throw AtollError.invalidArgument("\(subject) does not exist") }
        guard let parent = try resolver.parent(of: components, subject: label, create: true),
            let base = components.last
        else { throw AtollError.internalError("\(label): parent directory could not be created") }
        try clearSlot(parent, String(base), keepDirectory: false, label: label)
        if linkat(targetParent.rawValue, String(targetBase), parent, String(base), 0) != 0 {
            let err = atoll_errno()
            if err == EPERM {
                throw AtollError.invalidArgument("\(subject) is a directory or may not be linked")
            }
            try check(-1, label, "cannot create hardlink", "link", errno: err)
        }
    }

    // MARK: - Whiteouts

    private func whiteout(_ components: ArraySlice<Substring>, target: String, label: String) throws {
        if isNative {
            guard let parent = try resolver.parent(of: components, subject: label, create: false) else { return }
            try removeEntry(parent, target, label: label)
        } else {
            guard let parent = try resolver.parent(of: components, subject: label, create: true) else { return }
            try clearSlot(parent, target, keepDirectory: false, label: label)
            try check(atoll_mknodat(parent, target, S_IFCHR, 0, 0), label, "cannot create whiteout", "mknod")
        }
    }

    private func opaque(_ directory: ArraySlice<Substring>, label: String) throws {
        if isNative {
            guard let dirFD = try resolver.directory(directory, subject: label, create: false) else { return }
            let listing = Glibc.openat(dirFD.rawValue, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            try check(listing, label, "cannot open directory", "open")
            try prune(FileDescriptor(owning: listing), path: directory.joined(separator: "/"), label: label)
        } else {
            guard let dirFD = try resolver.directory(directory, subject: label, create: true) else { return }
            let listing = Glibc.openat(dirFD.rawValue, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            try check(listing, label, "cannot open directory", "open")
            defer { Glibc.close(listing) }
            try check(
                atoll_fsetxattr(listing, "trusted.overlay.opaque", "y", 1), label, "cannot mark directory opaque",
                "setxattr")
        }
    }

    /// Removes from a directory everything this layer did not add, recursively.
    private func prune(_ directory: FileDescriptor, path: String, label: String) throws {
        for (name, type) in try FileSystem.listDirectory(directory) {
            let child = path.isEmpty ? name : path + "/" + name
            if !added.contains(child) {
                try removeEntry(directory.rawValue, name, label: label)
            } else if type == Int32(DT_DIR) {
                let fd = Glibc.openat(directory.rawValue, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if fd >= 0 { try prune(FileDescriptor(owning: fd), path: child, label: label) }
            }
        }
    }

    // MARK: - Replacing and removing

    /// Makes room for a new entry `name`: removes what stands there, except a directory when
    /// `keepDirectory` is set. Returns whether a directory was kept.
    @discardableResult
    private func clearSlot(_ parent: Int32, _ name: String, keepDirectory: Bool, label: String) throws -> Bool {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return false }
        if st.st_mode & S_IFMT == S_IFDIR {
            if keepDirectory { return true }
            try removeEntry(parent, name, label: label)
        } else {
            try check(unlinkat(parent, name, 0), label, "cannot replace existing entry", "unlink", missingIsFine: true)
        }
        return false
    }

    /// Removes `name` (recursively if a directory) from the directory open at `parent`.
    private func removeEntry(_ parent: Int32, _ name: String, label: String) throws {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            // The cached parent may lie inside what goes away; forget it once done (not before:
            // `parent` may be the cached descriptor itself).
            defer { resolver.invalidate() }
            let fd = Glibc.openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            try check(fd, label, "cannot open directory to remove", "open")
            do {
                try FileSystem.removeContents(of: FileDescriptor(owning: fd), path: name)
            } catch {
                throw AtollError.internalError("\(label): cannot remove \"\(name)\"", cause: error)
            }
            try check(
                unlinkat(parent, name, AT_REMOVEDIR), label, "cannot remove directory", "rmdir", missingIsFine: true)
        } else {
            try check(unlinkat(parent, name, 0), label, "cannot remove entry", "unlink", missingIsFine: true)
        }
    }

    // MARK: - Overlay lower layers

    /// Before creating a missing parent in the upper directory: the same path must not be a
    /// symlink or a non-directory in the nearest lower layer that has it.
    private func checkLowerParent(_ components: ArraySlice<Substring>) throws {
        let path = components.joined(separator: "/")
        for lower in lowers {
            guard
                let fd = try? Syscall.openat2(
                    lower.rawValue, path, flags: ATOLL_O_PATH | O_NOFOLLOW, resolve: beneathNoSymlinks)
            else { continue }
            var st = stat()
            guard fstat(fd.rawValue, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: return
            case S_IFLNK:
                throw AtollError.invalidArgument(
                    "layer entry \"\(path)\": parent \"\(path)\" is a symbolic link in a lower layer")
            default:
                throw AtollError.invalidArgument(
                    "layer entry \"\(path)\": parent \"\(path)\" is not a directory in a lower layer")
            }
        }
    }

    /// Copies a regular file that exists only in a lower layer up into the upper directory, so
    /// that a hardlink to it can be made there. Returns false when no lower layer has it.
    private func copyUp(_ components: ArraySlice<Substring>, subject: String) throws -> Bool {
        guard let base = components.last else { return false }
        let path = components.joined(separator: "/")
        for lower in lowers {
            guard
                let source = try? Syscall.openat2(
                    lower.rawValue, path, flags: O_RDONLY | O_NOFOLLOW, resolve: beneathNoSymlinks)
            else { continue }
            var st = stat()
            guard fstat(source.rawValue, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                throw AtollError(.unsupported, "\(subject) exists only in a lower layer and is not a regular file")
            }
            guard let parent = try resolver.directory(components.dropLast(), subject: subject, create: true) else {
                return false
            }
            let fd = Glibc.openat(
                parent.rawValue, String(base), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            try check(fd, subject, "cannot copy up", "open")
            defer { Glibc.close(fd) }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            while true {
                let n = Glibc.read(source.rawValue, buffer.baseAddress, buffer.count)
                if n < 0 && atoll_errno() == EINTR { continue }
                try check(n, subject, "cannot copy up", "read")
                if n == 0 { break }
                var written = 0
                while written < n {
                    let w = Glibc.write(fd, buffer.baseAddress.map { $0 + written }, n - written)
                    if w < 0 && atoll_errno() == EINTR { continue }
                    try check(w, subject, "cannot copy up", "write")
                    written += w
                }
            }
            try check(fchown(fd, st.st_uid, st.st_gid), subject, "cannot copy up", "fchown")
            try check(fchmod(fd, st.st_mode & 0o7777), subject, "cannot copy up", "fchmod")
            var stamps = [st.st_atim, st.st_mtim]
            try check(futimens(fd, &stamps), subject, "cannot copy up", "futimens")
            return true
        }
        return false
    }

    // MARK: - Metadata helpers

    private func ownership(_ entry: OpaquePointer, label: String) throws -> (uid: uid_t, gid: gid_t) {
        let uid = archive_entry_uid(entry)
        let gid = archive_entry_gid(entry)
        guard uid >= 0, uid < Int64(UInt32.max), gid >= 0, gid < Int64(UInt32.max) else {
            throw AtollError.invalidArgument("\(label): owner \(uid):\(gid) is out of range")
        }
        return (uid_t(uid), gid_t(gid))
    }

    /// [atime, mtime]; a missing atime takes the mtime.
    private func times(_ entry: OpaquePointer) -> [timespec] {
        let mtime = timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: archive_entry_mtime_nsec(entry))
        let atime =
            archive_entry_atime_is_set(entry) != 0
            ? timespec(tv_sec: archive_entry_atime(entry), tv_nsec: archive_entry_atime_nsec(entry)) : mtime
        return [atime, mtime]
    }

    private func setXattrs(
        _ entry: OpaquePointer, label: String,
        _ set: (UnsafePointer<CChar>, UnsafeRawPointer?, Int) -> Int32
    ) throws {
        guard archive_entry_xattr_reset(entry) > 0 else { return }
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK {
            guard let name else { continue }
            if strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0 { continue }
            if set(name, value, size) != 0 {
                let err = atoll_errno()
                if err == EOPNOTSUPP { continue }
                try check(
                    -1, label, "cannot set extended attribute \"\(String(cString: name))\"", "setxattr", errno: err)
            }
        }
    }

    private func setDirectoryTimes() throws {
        for (path, stamps) in directoryTimes.reversed() {
            var stamps = stamps
            if path.isEmpty {
                try check(futimens(resolver.root.rawValue, &stamps), "layer root", "cannot set times", "futimens")
                continue
            }
            // A directory that a later entry removed or replaced is skipped.
            guard
                let fd = try? Syscall.openat2(
                    resolver.root.rawValue, path, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW, resolve: beneathNoSymlinks
                )
            else { continue }
            try check(futimens(fd.rawValue, &stamps), "layer entry \"\(path)\"", "cannot set times", "futimens")
        }
    }

    /// Throws a specific error for a failed call (`result` < 0); ENOSPC/EDQUOT become
    /// resourceExhausted.
    private func check<T: BinaryInteger>(
        _ result: T, _ label: String, _ what: String, _ call: String, errno: Int32? = nil, missingIsFine: Bool = false
    ) throws {
        guard result < 0 else { return }
        let err = errno ?? atoll_errno()
        if missingIsFine && err == ENOENT { return }
        let code: AtollError.Code = (err == ENOSPC || err == EDQUOT) ? .resourceExhausted : .internalError
        throw AtollError(code, "\(label): \(what)", cause: SystemCallError(call: call, subject: "", errno: err))
    }
}
