import AtollCore
import AtollOCI
import CZlib
import CZstd

/// How a layer blob is compressed (the type lives in AtollOCI, beside the media types).
extension LayerCompression {
    /// Recognises a compressed stream by its first bytes: gzip `1f 8b`, zstd `28 b5 2f fd`;
    /// anything else (including fewer bytes than a magic number) is taken as plain.
    public static func detect(_ prefix: UnsafeRawBufferPointer) -> LayerCompression {
        if prefix.count >= 2, prefix[0] == 0x1f, prefix[1] == 0x8b { return .gzip }
        if prefix.count >= 4, prefix[0] == 0x28, prefix[1] == 0xb5, prefix[2] == 0x2f, prefix[3] == 0xfd {
            return .zstd
        }
        return .none
    }

    /// `detect` over an array.
    public static func detect(_ bytes: [UInt8]) -> LayerCompression {
        bytes.withUnsafeBytes { detect($0) }
    }
}

/// A streaming decompressor for gzip (several members in a row are read as one stream, like
/// `gzip -d` and Go's reader) or zstd (several frames likewise). Feed it input in any pieces;
/// it fills the output buffer it is given. Not thread-safe; one stream per instance.
public final class CompressionDecoder {
    public let compression: LayerCompression
    private var zlib: UnsafeMutablePointer<z_stream>?
    private var zstd: OpaquePointer?
    /// Whether the last call ended exactly at the end of a gzip member or zstd frame, so that
    /// the stream may legally stop here.
    public private(set) var isAtEnd = false

    public init(_ compression: LayerCompression) throws {
        self.compression = compression
        switch compression {
        case .none:
            isAtEnd = true
        case .gzip:
            let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            stream.initialize(to: z_stream())
            // 15 + 16: a gzip wrapper only, largest window.
            let rc = inflateInit2_(stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
            guard rc == Z_OK else {
                stream.deallocate()
                throw AtollError.internalError("cannot start a gzip decoder (zlib error \(rc))")
            }
            zlib = stream
        case .zstd:
            guard let context = ZSTD_createDStream() else {
                throw AtollError(.resourceExhausted, "cannot start a zstd decoder: out of memory")
            }
            zstd = context
        }
    }

    deinit {
        if let zlib {
            inflateEnd(zlib)
            zlib.deallocate()
        }
        if let zstd { ZSTD_freeDStream(zstd) }
    }

    /// Decompresses from `input` into `output`. Returns how many input bytes were consumed and
    /// how many output bytes produced. Call again with the unconsumed rest; with empty input it
    /// flushes what the decoder still holds (0 produced means it holds nothing more).
    public func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> (
        consumed: Int, produced: Int
    ) {
        switch compression {
        case .none:
            let n = min(input.count, output.count)
            if n > 0, let src = input.baseAddress, let dst = output.baseAddress {
                dst.copyMemory(from: src, byteCount: n)
            }
            return (n, n)
        case .gzip:
            guard let stream = zlib else { return (0, 0) }
            return try decodeGzip(stream, input, output)
        case .zstd:
            guard let context = zstd else { return (0, 0) }
            var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
            var outBuffer = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
            let rc = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
            if ZSTD_isError(rc) != 0 {
                throw AtollError.dataLoss(
                    "layer zstd stream is corrupt: \(String(cString: ZSTD_getErrorName(rc)).lowercased())")
            }
            if inBuffer.pos > 0 || outBuffer.pos > 0 { isAtEnd = rc == 0 }
            return (inBuffer.pos, outBuffer.pos)
        }
    }

    private func decodeGzip(
        _ stream: UnsafeMutablePointer<z_stream>, _ input: UnsafeRawBufferPointer,
        _ output: UnsafeMutableRawBufferPointer
    ) throws -> (consumed: Int, produced: Int) {
        var consumed = 0
        var produced = 0
        while produced < output.count {
            let remaining = input.count - consumed
            if isAtEnd {
                // The previous member ended; another may follow.
                if remaining == 0 { break }
                guard inflateReset(stream) == Z_OK else {
                    throw AtollError.internalError("cannot reset the gzip decoder")
                }
                isAtEnd = false
            }
            stream.pointee.next_in =
                remaining > 0
                ? UnsafeMutablePointer(
                    mutating: input.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + consumed })
                : nil
            stream.pointee.avail_in = UInt32(min(remaining, Int(UInt32.max)))
            stream.pointee.next_out = output.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + produced }
            stream.pointee.avail_out = UInt32(min(output.count - produced, Int(UInt32.max)))
            let inBefore = stream.pointee.avail_in
            let outBefore = stream.pointee.avail_out
            let rc = inflate(stream, Z_NO_FLUSH)
            consumed += Int(inBefore - stream.pointee.avail_in)
            produced += Int(outBefore - stream.pointee.avail_out)
            switch rc {
            case Z_OK: continue
            case Z_STREAM_END: isAtEnd = true
            case Z_BUF_ERROR: return (consumed, produced)  // no progress possible: needs input
            default:
                let reason = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw AtollError.dataLoss("layer gzip stream is corrupt: \(reason)")
            }
        }
        return (consumed, produced)
    }
}

/// A streaming compressor producing gzip or zstd (or passing bytes through for `.none`). Output
/// goes to a sink closure in chunks of up to 1 MiB.
public final class CompressionEncoder {
    public let compression: LayerCompression
    private var zlib: UnsafeMutablePointer<z_stream>?
    private var zstd: OpaquePointer?
    private let buffer: UnsafeMutableRawBufferPointer

    /// `level` defaults to gzip 6 / zstd 3.
    public init(_ compression: LayerCompression, level: Int32? = nil) throws {
        self.compression = compression
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: compression == .none ? 0 : 1 << 20, alignment: 16)
        switch compression {
        case .none: break
        case .gzip:
            let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            stream.initialize(to: z_stream())
            let rc = deflateInit2_(
                stream, level ?? 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
                Int32(MemoryLayout<z_stream>.size))
            guard rc == Z_OK else {
                stream.deallocate()
                buffer.deallocate()
                throw AtollError.internalError("cannot start a gzip encoder (zlib error \(rc))")
            }
            zlib = stream
        case .zstd:
            guard let context = ZSTD_createCCtx() else {
                buffer.deallocate()
                throw AtollError(.resourceExhausted, "cannot start a zstd encoder: out of memory")
            }
            _ = ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level ?? 3)
            zstd = context
        }
    }

    deinit {
        if let zlib {
            deflateEnd(zlib)
            zlib.deallocate()
        }
        if let zstd { ZSTD_freeCCtx(zstd) }
        buffer.deallocate()
    }

    /// Compresses `input`; with `finish` also flushes and closes the stream.
    public func encode(
        _ input: UnsafeRawBufferPointer, finish: Bool, to sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        switch compression {
        case .none:
            if input.count > 0 { try sink(input) }
        case .gzip:
            guard let stream = zlib else { return }
            stream.pointee.next_in = UnsafeMutablePointer(
                mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
            stream.pointee.avail_in = UInt32(input.count)
            while true {
                stream.pointee.next_out = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
                stream.pointee.avail_out = UInt32(buffer.count)
                let rc = deflate(stream, finish ? Z_FINISH : Z_NO_FLUSH)
                guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                    throw AtollError.internalError("gzip compression failed (zlib error \(rc))")
                }
                let produced = buffer.count - Int(stream.pointee.avail_out)
                if produced > 0 { try sink(UnsafeRawBufferPointer(rebasing: buffer[0..<produced])) }
                if finish ? rc == Z_STREAM_END : (stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0) {
                    break
                }
            }
        case .zstd:
            guard let context = zstd else { return }
            var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
            while true {
                var outBuffer = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
                let rc = ZSTD_compressStream2(context, &outBuffer, &inBuffer, finish ? ZSTD_e_end : ZSTD_e_continue)
                if ZSTD_isError(rc) != 0 {
                    throw AtollError.internalError(
                        "zstd compression failed: \(String(cString: ZSTD_getErrorName(rc)).lowercased())")
                }
                if outBuffer.pos > 0 { try sink(UnsafeRawBufferPointer(rebasing: buffer[0..<outBuffer.pos])) }
                if finish ? rc == 0 : inBuffer.pos == inBuffer.size { break }
            }
        }
    }
}
