import AtollAPI
import AtollCore
import Foundation
import GRPCCore
import Glibc

/// The CLI's half of an attach or exec stream: sends stdin (and terminal resizes) up, writes
/// stdout and stderr down, and answers the exit code when the daemon sends one. With a TTY the
/// local terminal is in raw mode for the session.
enum InteractiveSession {
    /// What one request of the stream carries, built by the caller for its message type.
    struct Messages<Request: Sendable>: Sendable {
        var header: Request
        var stdin: @Sendable (Data) -> Request
        var closeStdin: Request
        var resize: @Sendable (UInt32, UInt32) -> Request
    }

    typealias Call<Request: Sendable> =
        @Sendable (
            _ producer: @escaping @Sendable (RPCWriter<Request>) async throws -> Void,
            _ onResponse:
                @escaping @Sendable (StreamingClientResponse<Atoll_Engine_V1_AttachResponse>) async throws -> Int32?
        ) async throws -> Int32?

    static func run<Request: Sendable>(
        _ messages: Messages<Request>, sendStdin: Bool, tty: Bool, call: Call<Request>
    ) async throws -> Int32? {
        let restore = tty && sendStdin && Terminal.isTerminal(0) ? Terminal.makeRaw(0) : nil
        Output.restoreBeforeExit.withLock { $0 = restore }
        defer {
            Output.restoreBeforeExit.withLock { $0 = nil }
            restore?()
        }
        let (requests, requestSink) = AsyncStream<Request>.makeStream()
        let (finished, finish) = AsyncStream<Void>.makeStream()
        requestSink.yield(messages.header)
        var resizeSource: (any DispatchSourceSignal)?
        if tty {
            signal(SIGWINCH, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
            source.setEventHandler {
                if let size = Terminal.size(0) { requestSink.yield(messages.resize(size.rows, size.columns)) }
            }
            source.resume()
            resizeSource = source
        }
        defer { resizeSource?.cancel() }
        if sendStdin {
            let thread = Thread {
                let input = FileDescriptor(owning: dup(0))
                while let chunk = try? input.readChunkOnce(maximum: 32 * 1024), !chunk.isEmpty {
                    requestSink.yield(messages.stdin(chunk))
                }
                requestSink.yield(messages.closeStdin)
            }
            thread.name = "atoll.stdin"
            thread.start()
        }
        return try await call(
            { writer in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await request in requests { try await writer.write(request) }
                    }
                    // The request stream ends once the output ended (the exit code arrived).
                    for await _ in finished { break }
                    group.cancelAll()
                }
            },
            { response in
                defer {
                    finish.yield()
                    finish.finish()
                    requestSink.finish()
                }
                var exitCode: Int32?
                for try await message in response.messages {
                    switch message.part {
                    case .stdout(let data)?: Output.write(data)
                    case .stderr(let data)?: Output.write(data, to: .standardError)
                    case .exitCode(let code)?: exitCode = code
                    default: break
                    }
                }
                return exitCode
            })
    }
}

extension FileDescriptor {
    /// One read of at most `maximum` bytes (a terminal or pipe gives what it has at once).
    func readChunkOnce(maximum: Int) throws -> Data {
        var buffer = [UInt8](repeating: 0, count: maximum)
        let count = try buffer.withUnsafeMutableBytes { try read(into: $0) }
        return Data(buffer[0..<count])
    }
}
