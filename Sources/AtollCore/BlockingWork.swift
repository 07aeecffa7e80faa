import Dispatch

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
}
