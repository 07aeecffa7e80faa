import AtollCore
import CAtollShim
import Foundation
import Glibc

/// Joins gRPC streams (async) and the engine's blocking readers and writers through a pipe, so
/// that archives flow through without being held in memory or spooled to disk.
enum StreamBridge {
    /// Runs `consume` on a blocking thread, reading from a pipe that `produce` fills (in the
    /// calling task) through the `write` function it is given. If `produce` fails, the consumer's
    /// `UploadStatus` says so before it sees the end of the pipe, so nothing half-sent is recorded.
    /// When `consume` fails early, its error wins over the broken pipe the producer then sees; when
    /// it finishes early (an archive's end marker before trailing padding), the rest is drained.
    static func feed<T: Sendable>(
        consume: @escaping @Sendable (FileDescriptor, UploadStatus) throws -> T,
        produce: (_ write: (Data) async throws -> Void) async throws -> Void
    ) async throws -> T {
        let (readEnd, writeEnd) = try makePipe()
        let status = UploadStatus()
        // The consumer blocks for the whole upload: it gets a thread of its own, so that many
        // uploads at once cannot take every thread the producers' writes need.
        let consumer = Task {
            try await BlockingWork.runOnOwnThread {
                defer { readEnd.close() }
                let value = try consume(readEnd, status)
                try drainToEnd(readEnd)
                return value
            }
        }
        do {
            try await produce { chunk in
                try await BlockingWork.run { try chunk.withUnsafeBytes { try writeEnd.writeAll($0) } }
            }
            writeEnd.close()
        } catch {
            status.markAborted()
            writeEnd.close()
            // The consumer decides: it fails if the break cut what it needed (it checks `status`),
            // and succeeds if the sender only broke off in trailing padding after the end.
            return try await consumer.value
        }
        return try await consumer.value
    }

    private static func drainToEnd(_ fd: FileDescriptor) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buffer.deallocate() }
        while try fd.read(into: buffer) > 0 {}
    }

    /// Runs `produce` on a blocking thread writing into a pipe, and hands what it writes to
    /// `send` in chunks of up to `chunkSize` bytes.
    static func drain(
        chunkSize: Int = 1 << 20, produce: @escaping @Sendable (FileDescriptor) throws -> Void,
        send: (Data) async throws -> Void
    ) async throws {
        let (readEnd, writeEnd) = try makePipe()
        let producer = Task {
            try await BlockingWork.run {
                defer { writeEnd.close() }; try produce(writeEnd)
            }
        }
        do {
            while true {
                let chunk = try await BlockingWork.run { try readEnd.readChunk(maximum: chunkSize) }
                if chunk.isEmpty { break }
                try await send(chunk)
            }
        } catch {
            readEnd.close()
            _ = try? await producer.value
            throw error
        }
        readEnd.close()
        try await producer.value
    }

    private static func makePipe() throws -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [0, 0]
        try Syscall.retrying("pipe2") { atoll_pipe_cloexec(&fds, 1 << 20) }  // a big pipe: fewer wake-ups
        return (FileDescriptor(owning: fds[0]), FileDescriptor(owning: fds[1]))
    }
}
