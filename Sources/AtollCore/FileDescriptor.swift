import CAtollShim
import Foundation
import Glibc

/// Owns one open file descriptor and closes it exactly once: explicitly with `close()` or when
/// the owner goes away. Pass `rawValue` to calls; never close it elsewhere.
public final class FileDescriptor: @unchecked Sendable {
    public private(set) var rawValue: Int32

    public init(owning fd: Int32) { rawValue = fd }

    deinit { if rawValue >= 0 { Glibc.close(rawValue) } }

    /// Closes now; later calls are no-ops.
    public func close() {
        if rawValue >= 0 { Glibc.close(rawValue) }
        rawValue = -1
    }

    /// Reads up to `count` bytes into `buffer`; returns 0 at end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> Int {
        try Syscall.retrying("read") { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
    }

    /// Writes the whole buffer, looping over short writes.
    public func writeAll(_ buffer: UnsafeRawBufferPointer) throws(SystemCallError) {
        guard let base = buffer.baseAddress else { return }
        var offset = 0
        while offset < buffer.count {
            offset += try Syscall.retrying("write") { Glibc.write(rawValue, base + offset, buffer.count - offset) }
        }
    }

    public func writeAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAll($0) }
    }

    /// Reads until `maximum` bytes or end of file, whichever comes first (a pipe returns short
    /// reads; this fills the chunk). An empty result means end of file.
    public func readChunk(maximum: Int) throws -> Data {
        var data = Data(count: maximum)
        var filled = 0
        while filled < maximum {
            let n = try data.withUnsafeMutableBytes {
                try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...]))
            }
            if n == 0 { break }
            filled += n
        }
        data.count = filled
        return data
    }

    /// Reads everything up to end of file (for small files: configs, manifests).
    public func readAll(limit: Int = 64 << 20) throws -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
            if result.count > limit {
                throw AtollError(.resourceExhausted, "file is larger than the \(limit)-byte limit")
            }
        }
    }

    public func fsync(_ subject: String = "") throws(SystemCallError) { try Syscall.fsync(rawValue, subject) }
}
