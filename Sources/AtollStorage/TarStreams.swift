import AtollCore
import AtollOCI
import CArchive
import Glibc

/// The uncompressed tar stream of a layer blob: reads the blob in 1 MiB chunks, hashes the
/// compressed bytes, decompresses, hashes and counts the uncompressed bytes, and enforces the
/// size limit. `next()` hands out chunks that stay valid until the following call.
final class TarInputStream {
    private let source: FileDescriptor
    private let limit: Int64
    private let input: UnsafeMutableRawBufferPointer
    private let output: UnsafeMutableRawBufferPointer
    private var inputStart = 0
    private var inputEnd = 0
    private var sourceAtEnd = false
    private(set) var compression: LayerCompression = .none
    private var decoder: CompressionDecoder?
    private var compressedHasher = DigestHasher()
    private var uncompressedHasher = DigestHasher()
    private(set) var uncompressedCount: Int64 = 0
    /// An error raised inside a libarchive callback, reported after libarchive gives up.
    var pendingError: (any Error)?

    init(source: FileDescriptor, limit: Int64, chunkSize: Int = 1 << 20) throws {
        self.source = source
        self.limit = limit
        input = .allocate(byteCount: chunkSize, alignment: 64)
        output = .allocate(byteCount: chunkSize, alignment: 64)
        do {
            try fill()
            compression = LayerCompression.detect(UnsafeRawBufferPointer(rebasing: input[inputStart..<inputEnd]))
            if compression != .none { decoder = try CompressionDecoder(compression) }
        } catch {
            input.deallocate()
            output.deallocate()
            throw error
        }
    }

    deinit {
        input.deallocate()
        output.deallocate()
    }

    /// Reads more of the blob into the (empty) input buffer; hashes what it read.
    private func fill() throws {
        inputStart = 0
        inputEnd = 0
        while inputEnd == 0 && !sourceAtEnd {
            let n: Int
            do {
                n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: input[0...]))
            } catch {
                throw AtollError.internalError("cannot read the layer blob", cause: error)
            }
            if n == 0 { sourceAtEnd = true }
            inputEnd = n
            compressedHasher.update(UnsafeRawBufferPointer(rebasing: input[0..<n]))
        }
    }

    /// The next piece of the uncompressed stream; empty at its end.
    func next() throws -> UnsafeRawBufferPointer {
        let chunk: UnsafeRawBufferPointer
        if let decoder {
            chunk = try nextDecoded(decoder)
        } else {
            if inputStart == inputEnd { try fill() }
            chunk = UnsafeRawBufferPointer(rebasing: input[inputStart..<inputEnd])
            inputStart = inputEnd
        }
        uncompressedCount += Int64(chunk.count)
        if uncompressedCount > limit {
            throw AtollError(.resourceExhausted, "layer expands beyond the limit of \(limit) bytes")
        }
        if decoder != nil { uncompressedHasher.update(chunk) }
        return chunk
    }

    private func nextDecoded(_ decoder: CompressionDecoder) throws -> UnsafeRawBufferPointer {
        while true {
            if inputStart == inputEnd && !sourceAtEnd { try fill() }
            let (consumed, produced) = try decoder.decode(
                UnsafeRawBufferPointer(rebasing: input[inputStart..<inputEnd]), into: output)
            inputStart += consumed
            if produced > 0 { return UnsafeRawBufferPointer(rebasing: output[0..<produced]) }
            if inputStart == inputEnd && sourceAtEnd {
                guard decoder.isAtEnd else {
                    throw AtollError.dataLoss("layer \(compression.rawValue) stream is truncated")
                }
                return UnsafeRawBufferPointer(start: nil, count: 0)
            }
            if consumed == 0 && inputStart < inputEnd {
                // The decoder took nothing and gave nothing although input remains.
                throw AtollError.dataLoss("layer \(compression.rawValue) stream is corrupt: the decoder is stuck")
            }
        }
    }

    /// Reads the rest of the stream so that the digests cover all of it.
    func drain() throws {
        while try next().count > 0 {}
    }

    /// Digests and sizes; call after `drain()`.
    func result() -> AppliedLayer {
        let compressed = compressedHasher.finalize()
        return AppliedLayer(
            diffID: decoder == nil ? compressed : uncompressedHasher.finalize(),
            uncompressedSize: uncompressedCount,
            compressedDigest: compressed,
            compressedSize: compressedHasher.count)
    }
}

/// Where a produced layer goes: hashes the uncompressed tar, compresses it, hashes and counts
/// the compressed bytes and writes them to the output descriptor.
final class TarOutputStream {
    private let output: FileDescriptor
    private let encoder: CompressionEncoder
    private var uncompressedHasher = DigestHasher()
    private var compressedHasher = DigestHasher()
    var pendingError: (any Error)?

    init(output: FileDescriptor, compression: LayerCompression) throws {
        self.output = output
        encoder = try CompressionEncoder(compression)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        uncompressedHasher.update(bytes)
        try encoder.encode(bytes, finish: false, to: emit)
    }

    func finish() throws -> AppliedLayer {
        try encoder.encode(UnsafeRawBufferPointer(start: nil, count: 0), finish: true, to: emit)
        return AppliedLayer(
            diffID: uncompressedHasher.finalize(), uncompressedSize: uncompressedHasher.count,
            compressedDigest: compressedHasher.finalize(), compressedSize: compressedHasher.count)
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        compressedHasher.update(bytes)
        do { try output.writeAll(bytes) } catch {
            throw AtollError(
                error.errno == ENOSPC ? .resourceExhausted : .internalError, "cannot write the layer", cause: error)
        }
    }
}

/// libarchive's read callback: hands libarchive the next uncompressed chunk.
func tarReadCallback(
    _ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?
) -> la_ssize_t {
    guard let context, let buffer else { return -1 }
    let stream = Unmanaged<TarInputStream>.fromOpaque(context).takeUnretainedValue()
    do {
        let chunk = try stream.next()
        buffer.pointee = chunk.baseAddress.map { UnsafeRawPointer($0) }
        return chunk.count
    } catch {
        stream.pendingError = error
        return -1
    }
}

/// libarchive's write callback: takes the tar bytes libarchive produced.
func tarWriteCallback(
    _ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ bytes: UnsafeRawPointer?, _ count: Int
) -> la_ssize_t {
    guard let context else { return -1 }
    let stream = Unmanaged<TarOutputStream>.fromOpaque(context).takeUnretainedValue()
    do {
        try stream.write(UnsafeRawBufferPointer(start: bytes, count: count))
        return count
    } catch {
        stream.pendingError = error
        return -1
    }
}

/// libarchive's last error as text.
public func archiveErrorText(_ archive: OpaquePointer?) -> String {
    guard let archive, let text = archive_error_string(archive) else { return "unknown libarchive error" }
    return String(cString: text).lowercased()
}
