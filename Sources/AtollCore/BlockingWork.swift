import Dispatch
import Foundation

/// Runs blocking work (file I/O, unpacking, syscalls that wait) off Swift's cooperative thread
/// pool, which has only as many threads as cores: blocking it would stall every other request.
public enum BlockingWork {
    private static let queue = DispatchQueue(label: "atoll.blocking", attributes: .concurrent)

    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    /// Like `run`, on a thread of its own: for work that blocks for long (a reader that waits on
    /// a pipe for a whole upload), which must not hold one of the shared queue's threads.
    public static func runOnOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
            thread.name = "atoll.blocking.long"
            thread.start()
        }
    }
}
