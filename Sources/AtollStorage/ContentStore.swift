import AtollCore
import Foundation
import Glibc
import Synchronization

/// A blob in the content store: its digest and size.
public struct ContentDescriptor: Codable, Sendable, Hashable {
    public var digest: Digest
    public var size: Int64
    public init(digest: Digest, size: Int64) {
        self.digest = digest
        self.size = size
    }
}

/// What the store knows about one blob on disk.
public struct ContentInfo: Codable, Sendable, Hashable {
    public var digest: Digest
    public var size: Int64
    /// Modification time of the blob file, seconds since the epoch (when it was committed).
    public var modified: Int64
    public init(digest: Digest, size: Int64, modified: Int64) {
        self.digest = digest
        self.size = size
        self.modified = modified
    }
}

/// Content-addressed blobs on disk: `<root>/blobs/sha256/<hex>`, with in-flight writes under
/// `<root>/ingest/`. Blobs appear only whole and verified (written to a temporary file, hashed
/// while written, checked, fsynced, renamed into place) and are never modified afterwards.
/// Every method is safe to call from several threads at once.
///
///     let store = try ContentStore(root: "/var/lib/atoll/content")
///     let blob = try store.ingest(expected: layerDigest, expectedSize: size) { writer in
///         for chunk in download { try writer.write(chunk) }
///     }
///     let manifest = try store.read(manifestDigest, limit: 4 << 20)
public final class ContentStore: Sendable {
    public let root: String
    /// Directory of the blobs, `<root>/blobs/sha256`.
    public let blobsDirectory: String
    /// Directory of in-flight writes, `<root>/ingest`.
    public let ingestDirectory: String

    /// Ingests running now by expected digest: a second ingest of the same blob waits for the first.
    private let inFlight = Mutex<[Digest: IngestWaiter]>([:])
    /// Serialises renaming blobs into place with deleting them, so that garbage collection never
    /// removes a blob a writer has just reported committed.
    private let namespace = Mutex<Void>(())

    /// Opens (creating if needed) the store at `root` and removes in-flight files a crash left in
    /// `ingest/`. Only one store may be open on a root at a time.
    public init(root: String) throws {
        self.root = root
        blobsDirectory = root + "/blobs/sha256"
        ingestDirectory = root + "/ingest"
        do {
            try Syscall.mkdirAll(blobsDirectory, mode: 0o755)
            try Syscall.mkdirAll(ingestDirectory, mode: 0o700)
            let ingest = try Syscall.open(ingestDirectory, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            try FileSystem.removeContents(of: ingest, path: ingestDirectory)
        } catch {
            throw AtollError(.internalError, "cannot open content store at \(root)", cause: error)
        }
    }

    /// Where the blob with this digest lives (whether or not it exists).
    public func path(for digest: Digest) -> String { "\(blobsDirectory)/\(digest.hex)" }

    /// Whether the blob exists (as a regular file; symlinks are not followed).
    public func contains(_ digest: Digest) -> Bool {
        guard let st = try? Syscall.stat(path(for: digest), followSymlinks: false) else { return false }
        return st.st_mode & S_IFMT == S_IFREG
    }

    /// Digest, size and modification time of a blob.
    public func info(_ digest: Digest) throws -> ContentInfo {
        let st: stat
        do {
            st = try Syscall.stat(path(for: digest), followSymlinks: false)
        } catch  where error.errno == ENOENT {
            throw AtollError.notFound("blob \(digest) not found")
        } catch {
            throw AtollError(.internalError, "cannot stat blob \(digest)", cause: error)
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw AtollError.dataLoss("blob \(digest) is not a regular file")
        }
        return ContentInfo(digest: digest, size: Int64(st.st_size), modified: Int64(st.st_mtim.tv_sec))
    }

    /// Opens a blob for reading (the caller verifies what it streams, or uses `read`).
    public func open(_ digest: Digest) throws -> FileDescriptor {
        let fd: FileDescriptor
        do {
            fd = try Syscall.open(path(for: digest), flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        } catch  where error.errno == ENOENT {
            throw AtollError.notFound("blob \(digest) not found")
        } catch  where error.errno == ELOOP {
            throw AtollError.dataLoss("blob \(digest) is a symlink")
        } catch {
            throw AtollError(.internalError, "cannot open blob \(digest)", cause: error)
        }
        let st = try Syscall.stat(fd: fd.rawValue)
        guard st.st_mode & S_IFMT == S_IFREG else { throw AtollError.dataLoss("blob \(digest) is not a regular file") }
        return fd
    }

    /// Reads a small blob (a manifest, a config) whole and checks that it still hashes to its
    /// digest: a blob damaged on disk throws `dataLoss`; one larger than `limit` bytes throws
    /// `resourceExhausted`.
    public func read(_ digest: Digest, limit: Int = 16 << 20) throws -> [UInt8] {
        let fd = try open(digest)
        let size = Int64(try Syscall.stat(fd: fd.rawValue).st_size)
        guard size <= Int64(limit) else {
            throw AtollError(.resourceExhausted, "blob \(digest) has \(size) bytes, more than the \(limit)-byte limit")
        }
        let bytes: [UInt8]
        do {
            bytes = try fd.readAll(limit: limit)
        } catch {
            throw AtollError(.internalError, "cannot read blob \(digest)", cause: error)
        }
        let actual = Digest.sha256(of: bytes)
        guard actual == digest else {
            throw AtollError.dataLoss("blob \(digest) is corrupted on disk: its \(bytes.count) bytes hash to \(actual)")
        }
        return bytes
    }

    /// Starts writing a blob. Give the digest and size when known: commit then checks them.
    /// `limit` caps the bytes accepted (`resourceExhausted` beyond it).
    public func writer(expected: Digest? = nil, expectedSize: Int64? = nil, limit: Int64? = nil) throws -> ContentWriter
    {
        try ContentWriter(store: self, expected: expected, expectedSize: expectedSize, limit: limit)
    }

    /// Ingests the blob `expected`: returns at once if it exists (without calling `produce`);
    /// if another thread is ingesting the same digest now, waits for it and returns its result
    /// (or does the work itself when that one failed). Otherwise calls `produce` with a writer
    /// and commits what it wrote. Concurrent ingests of one blob do the work once.
    @discardableResult
    public func ingest(
        expected: Digest, expectedSize: Int64? = nil, limit: Int64? = nil, _ produce: (ContentWriter) throws -> Void
    ) throws -> ContentDescriptor {
        while true {
            if let existing = try existingBlob(expected, expectedSize: expectedSize) { return existing }
            let (waiter, isOwner) = inFlight.withLock { map -> (IngestWaiter, Bool) in
                if let waiter = map[expected] { return (waiter, false) }
                let waiter = IngestWaiter()
                map[expected] = waiter
                return (waiter, true)
            }
            if !isOwner {
                if let result = waiter.wait() {
                    if let expectedSize, result.size != expectedSize {
                        throw AtollError.dataLoss(
                            "blob \(expected) has \(result.size) bytes, expected \(expectedSize)")
                    }
                    return result
                }
                continue  // The other ingest failed: try again, perhaps as the owner.
            }
            var result: ContentDescriptor?
            defer {
                _ = inFlight.withLock { $0.removeValue(forKey: expected) }
                waiter.finish(result)
            }
            if let existing = try existingBlob(expected, expectedSize: expectedSize) {
                result = existing
                return existing
            }
            let writer = try self.writer(expected: expected, expectedSize: expectedSize, limit: limit)
            do {
                try produce(writer)
                let committed = try writer.commit()
                result = committed
                return committed
            } catch {
                writer.abort()
                throw error
            }
        }
    }

    /// Ingests a buffer, checking it against `expected` when given.
    @discardableResult
    public func ingest(bytes: [UInt8], expected: Digest? = nil) throws -> ContentDescriptor {
        let digest = expected ?? Digest.sha256(of: bytes)
        return try ingest(expected: digest, expectedSize: Int64(bytes.count)) { try $0.write(bytes) }
    }

    /// Removes a blob. A missing blob throws `notFound`.
    public func delete(_ digest: Digest) throws {
        try namespace.withLock { _ in
            do {
                try Syscall.unlink(path(for: digest))
            } catch let error as SystemCallError where error.errno == ENOENT {
                throw AtollError.notFound("blob \(digest) not found")
            } catch {
                throw AtollError(.internalError, "cannot delete blob \(digest)", cause: error)
            }
        }
        try? FileSystem.syncDirectory(blobsDirectory)
    }

    /// Every blob, sorted by digest. Entries that are not regular files named by 64 hex digits
    /// are ignored (and never followed).
    public func list() throws -> [ContentInfo] {
        let directory: FileDescriptor
        do {
            directory = try Syscall.open(blobsDirectory, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        } catch {
            throw AtollError(.internalError, "cannot list blobs in \(blobsDirectory)", cause: error)
        }
        var result: [ContentInfo] = []
        for (name, _) in try FileSystem.listDirectory(directory) {
            guard let digest = try? Digest(hex: name),
                let st = try? Syscall.stat(name, at: directory.rawValue, followSymlinks: false),
                st.st_mode & S_IFMT == S_IFREG
            else { continue }
            result.append(ContentInfo(digest: digest, size: Int64(st.st_size), modified: Int64(st.st_mtim.tv_sec)))
        }
        return result.sorted { $0.digest < $1.digest }
    }

    /// Removes every blob not in `keeping`. Blobs being ingested right now are left alone, as is
    /// everything in `ingest/`. Returns the removed digests (sorted) and their total size.
    @discardableResult
    public func garbageCollect(keeping: Set<Digest>) throws -> (removed: [Digest], bytes: Int64) {
        var removed: [Digest] = []
        var bytes: Int64 = 0
        for blob in try list() where !keeping.contains(blob.digest) {
            if inFlight.withLock({ $0[blob.digest] != nil }) { continue }
            let gone = try namespace.withLock { _ -> Bool in
                do {
                    try Syscall.unlink(path(for: blob.digest))
                    return true
                } catch let error as SystemCallError where error.errno == ENOENT {
                    return false
                } catch {
                    throw AtollError(
                        .internalError, "garbage collection cannot delete blob \(blob.digest)", cause: error)
                }
            }
            if gone {
                removed.append(blob.digest)
                bytes += blob.size
            }
        }
        if !removed.isEmpty { try FileSystem.syncDirectory(blobsDirectory) }
        return (removed, bytes)
    }

    /// Takes a file the caller wrote in `ingestDirectory` as the blob `digest` (which the caller
    /// computed while writing it, as `Layer.diff` does): fsyncs it and renames it into place, or
    /// removes it when the blob is already there.
    @discardableResult
    public func adopt(_ temporary: String, as digest: Digest) throws -> ContentDescriptor {
        guard temporary.hasPrefix(ingestDirectory + "/") else {
            throw AtollError.internalError("cannot adopt \(temporary): it is not in \(ingestDirectory)")
        }
        if let existing = try existingBlob(digest, expectedSize: nil) {
            unlink(temporary)
            return existing
        }
        let file = try Syscall.open(temporary, flags: O_RDONLY | O_NOFOLLOW)
        try file.fsync(temporary)
        let size = Int64(try Syscall.stat(fd: file.rawValue).st_size)
        file.close()
        try place(temporary, as: digest)
        return ContentDescriptor(digest: digest, size: size)
    }

    // MARK: - For ContentWriter

    /// Renames a verified, fsynced temporary file into place as the blob `digest`.
    func place(_ temporary: String, as digest: Digest) throws {
        try namespace.withLock { _ in
            do {
                try Syscall.rename(from: temporary, to: path(for: digest))
            } catch {
                throw AtollError(.internalError, "cannot move blob \(digest) into place", cause: error)
            }
        }
        do {
            try FileSystem.syncDirectory(blobsDirectory)
        } catch {
            throw AtollError(
                .internalError, "cannot sync \(blobsDirectory) after committing blob \(digest)", cause: error)
        }
    }

    private func existingBlob(_ digest: Digest, expectedSize: Int64?) throws -> ContentDescriptor? {
        guard contains(digest) else { return nil }
        let info = try info(digest)
        if let expectedSize, info.size != expectedSize {
            throw AtollError.dataLoss("blob \(digest) exists with \(info.size) bytes, expected \(expectedSize)")
        }
        return ContentDescriptor(digest: digest, size: info.size)
    }
}

/// Writes one blob into a `ContentStore`: bytes go to a temporary file in `ingest/` and are
/// hashed as they pass; `commit` checks size and digest, fsyncs and renames the file into place.
/// A writer that is aborted, fails, or goes away without commit leaves no file behind.
public final class ContentWriter: @unchecked Sendable {
    private enum Phase { case open, committed, closed }

    public let expected: Digest?
    public let expectedSize: Int64?
    public let limit: Int64?
    /// The temporary file under `ingest/`.
    public let temporaryPath: String
    private let store: ContentStore

    // Guarded by `lock` (the class is Sendable through it).
    private let lock = NSLock()
    private var phase = Phase.open
    private var file: FileDescriptor?
    private var hasher = DigestHasher()

    fileprivate init(store: ContentStore, expected: Digest?, expectedSize: Int64?, limit: Int64?) throws {
        self.store = store
        self.expected = expected
        self.expectedSize = expectedSize
        self.limit = limit
        let name = (expected.map { $0.shortID + "-" } ?? "") + Identifier.random().prefix(16)
        temporaryPath = "\(store.ingestDirectory)/\(name)"
        if let limit, let expectedSize, expectedSize > limit {
            throw AtollError(
                .resourceExhausted,
                "blob \(expected?.description ?? "") of \(expectedSize) bytes exceeds the \(limit)-byte limit")
        }
        do {
            file = try Syscall.open(temporaryPath, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600)
        } catch {
            throw AtollError(.internalError, "cannot create ingest file \(temporaryPath)", cause: error)
        }
    }

    deinit { abort() }

    /// The bytes written so far.
    public var written: Int64 {
        lock.lock()
        defer { lock.unlock() }
        return hasher.count
    }

    /// Appends bytes. Writing past the expected size or the limit fails (and aborts the writer).
    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        lock.lock()
        do {
            defer { lock.unlock() }
            guard phase == .open, let file else {
                throw AtollError.failedPrecondition("writer for \(subject) is no longer open")
            }
            let total = hasher.count + Int64(buffer.count)
            if let limit, total > limit {
                throw AtollError(.resourceExhausted, "blob \(subject) exceeds the \(limit)-byte limit")
            }
            if let expectedSize, total > expectedSize {
                throw AtollError.dataLoss("blob \(subject) is larger than the expected \(expectedSize) bytes")
            }
            do {
                try file.writeAll(buffer)
            } catch {
                throw AtollError(.internalError, "cannot write ingest file \(temporaryPath)", cause: error)
            }
            hasher.update(buffer)
        } catch let error as AtollError where error.code != .failedPrecondition {
            abort()
            throw error
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Verifies size and digest, makes the blob durable and moves it into place. On a mismatch
    /// throws `dataLoss` naming expected and actual values, and removes the temporary file.
    @discardableResult
    public func commit() throws -> ContentDescriptor {
        try commit(verifying: expected)
    }

    /// Commits, checking the digest against `digest` (known only at the end of an upload whose
    /// client names it last) as well as against `expected`.
    @discardableResult
    public func commit(verifying digest: Digest?) throws -> ContentDescriptor {
        let wanted = digest
        lock.lock()
        guard phase == .open, let file else {
            lock.unlock()
            throw AtollError.failedPrecondition("writer for \(subject) is no longer open")
        }
        phase = .committed
        let digest = hasher.finalize()
        let size = hasher.count
        lock.unlock()
        do {
            if let expectedSize, size != expectedSize {
                throw AtollError.dataLoss(
                    "size mismatch for blob \(subject): expected \(expectedSize) bytes, got \(size)")
            }
            for wanted in [expected, wanted].compactMap({ $0 }) where digest != wanted {
                throw AtollError.dataLoss("digest mismatch: expected \(wanted), got \(digest) (\(size) bytes)")
            }
            do {
                try Syscall.retrying("fchmod", temporaryPath) { fchmod(file.rawValue, 0o444) }
                try file.fsync(temporaryPath)
            } catch {
                throw AtollError(.internalError, "cannot make ingest file \(temporaryPath) durable", cause: error)
            }
            try store.place(temporaryPath, as: digest)
            lock.lock()
            self.file?.close()
            self.file = nil
            phase = .closed
            lock.unlock()
            return ContentDescriptor(digest: digest, size: size)
        } catch {
            discard()
            throw error
        }
    }

    /// Stops writing and removes the temporary file. Safe to call more than once.
    public func abort() {
        lock.lock()
        let wasOpen = phase == .open
        if wasOpen { phase = .closed }
        lock.unlock()
        if wasOpen { discard() }
    }

    private func discard() {
        lock.lock()
        file?.close()
        file = nil
        phase = .closed
        lock.unlock()
        try? Syscall.unlink(temporaryPath, missingIsFine: true)
    }

    private var subject: String { expected?.description ?? temporaryPath }
}

/// One in-flight ingest that other threads wait for.
private final class IngestWaiter: @unchecked Sendable {
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var done = false
    private var result: ContentDescriptor?

    func wait() -> ContentDescriptor? {
        condition.lock()
        defer { condition.unlock() }
        while !done { condition.wait() }
        return result
    }

    func finish(_ result: ContentDescriptor?) {
        condition.lock()
        self.result = result
        done = true
        condition.broadcast()
        condition.unlock()
    }
}
