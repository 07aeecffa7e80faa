import AtollCore
import CArchive
import Glibc

/// Reads the entries of an image archive (tar, plain or compressed) from a file descriptor,
/// one at a time, with libarchive. The archive is untrusted: names are only ever used as keys,
/// never as file-system paths.
final class ArchiveFileReader {
    enum EntryType { case file, directory, symlink(String), hardlink(String), other }

    struct Entry {
        var path: String
        var type: EntryType
        var size: Int64
    }

    private let archive: OpaquePointer

    init(reading fd: FileDescriptor) throws {
        guard let archive = archive_read_new() else {
            throw AtollError.internalError("cannot allocate an archive reader")
        }
        self.archive = archive
        archive_read_support_filter_gzip(archive)
        archive_read_support_filter_zstd(archive)
        archive_read_support_format_tar(archive)
        archive_read_support_format_gnutar(archive)
        guard archive_read_open_fd(archive, fd.rawValue, 1 << 20) == ARCHIVE_OK else {
            // deinit frees the archive: every stored property is set, so it runs on this throw too.
            throw AtollError.invalidArgument("not an image archive: \(Self.errorString(archive))")
        }
    }

    deinit { archive_read_free(archive) }

    /// The next entry, or nil at the end of the archive.
    func next() throws -> Entry? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF { return nil }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
            throw AtollError.invalidArgument("malformed image archive: \(Self.errorString(archive))")
        }
        let path = Self.clean(archive_entry_pathname(entry).map { String(cString: $0) } ?? "")
        let size = archive_entry_size(entry)
        if let target = archive_entry_hardlink(entry) {
            return Entry(path: path, type: .hardlink(Self.clean(String(cString: target))), size: 0)
        }
        let type: EntryType
        switch archive_entry_filetype(entry) {
        case UInt32(Glibc.S_IFREG): type = .file
        case UInt32(Glibc.S_IFDIR): type = .directory
        case UInt32(Glibc.S_IFLNK): type = .symlink(archive_entry_symlink(entry).map { String(cString: $0) } ?? "")
        default: type = .other
        }
        return Entry(path: path, type: type, size: size)
    }

    /// Streams the current entry's data to `sink` in blocks.
    func readData(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: Int64 = 0
        while true {
            let status = archive_read_data_block(archive, &block, &size, &offset)
            if status == ARCHIVE_EOF { return }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else {
                throw AtollError.invalidArgument("malformed image archive: \(Self.errorString(archive))")
            }
            if let block, size > 0 { try sink(UnsafeRawBufferPointer(start: block, count: size)) }
        }
    }

    /// Reads the current entry into memory, refusing more than `limit` bytes.
    func readAll(limit: Int, name: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try readData { chunk in
            guard bytes.count + chunk.count <= limit else {
                throw AtollError(.resourceExhausted, "\(name) in the archive is larger than \(limit) bytes")
            }
            bytes.append(contentsOf: chunk)
        }
        return bytes
    }

    /// Normalises an archive member name to a relative key: no leading "./" or "/", no "." parts;
    /// ".." parts are resolved lexically and can never climb above the archive's top.
    static func clean(_ name: String, relativeTo base: String = "") -> String {
        var parts: [Substring] = base.split(separator: "/")
        for part in name.split(separator: "/") {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return parts.joined(separator: "/")
    }

    private static func errorString(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }
}

/// Writes a tar archive (pax) to a file descriptor with libarchive.
final class ArchiveFileWriter {
    private let archive: OpaquePointer
    private var closed = false

    init(writing fd: FileDescriptor) throws {
        guard let archive = archive_write_new() else {
            throw AtollError.internalError("cannot allocate an archive writer")
        }
        self.archive = archive
        archive_write_set_format_pax_restricted(archive)
        archive_write_set_bytes_in_last_block(archive, 1)
        guard archive_write_open_fd(archive, fd.rawValue) == ARCHIVE_OK else {
            closed = true  // deinit frees it
            throw AtollError.internalError("cannot start the archive: \(Self.errorString(archive))")
        }
    }

    deinit {
        if !closed { archive_write_close(archive) }
        archive_write_free(archive)
    }

    func addDirectory(_ path: String) throws {
        try writeHeader(path: path, type: UInt32(Glibc.S_IFDIR), mode: 0o755, size: 0)
    }

    func addFile(_ path: String, bytes: [UInt8]) throws {
        try writeHeader(path: path, type: UInt32(Glibc.S_IFREG), mode: 0o644, size: Int64(bytes.count))
        try bytes.withUnsafeBytes { try writeData($0) }
    }

    /// Adds a file whose content is read from `source` (exactly `size` bytes).
    func addFile(_ path: String, size: Int64, from source: FileDescriptor) throws {
        try writeHeader(path: path, type: UInt32(Glibc.S_IFREG), mode: 0o644, size: size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var remaining = size
        while remaining > 0 {
            let n = try source.read(
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(min(Int64(buffer.count), remaining))]))
            guard n > 0 else { throw AtollError.dataLoss("\(path) ended \(remaining) bytes early") }
            try writeData(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            remaining -= Int64(n)
        }
    }

    func finish() throws {
        closed = true
        guard archive_write_close(archive) == ARCHIVE_OK else {
            throw AtollError.internalError("cannot finish the archive: \(Self.errorString(archive))")
        }
    }

    private func writeHeader(path: String, type: UInt32, mode: mode_t, size: Int64) throws {
        guard let entry = archive_entry_new() else {
            throw AtollError.internalError("cannot allocate an archive entry")
        }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, path)
        archive_entry_set_filetype(entry, type)
        archive_entry_set_perm(entry, mode)
        archive_entry_set_size(entry, size)
        archive_entry_set_mtime(entry, 0, 0)
        guard archive_write_header(archive, entry) == ARCHIVE_OK else {
            throw AtollError.internalError("cannot write \(path) to the archive: \(Self.errorString(archive))")
        }
    }

    private func writeData(_ buffer: UnsafeRawBufferPointer) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        let written = archive_write_data(archive, base, buffer.count)
        guard written == buffer.count else {
            throw AtollError(.unavailable, "cannot write the archive: \(Self.errorString(archive))")
        }
    }

    private static func errorString(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }
}
