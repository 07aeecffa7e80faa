import Synchronization

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var inSeconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }

    /// A uniformly random duration in `range`.
    static func random(in range: ClosedRange<Duration>) -> Duration {
        let low = range.lowerBound.inSeconds
        let high = range.upperBound.inSeconds
        return .seconds(high > low ? Double.random(in: low...high) : low)
    }
}

/// The transport call ran past `RaftTiming.rpcTimeout`.
struct RaftRPCTimeout: Error {}

/// Hands a continuation to whichever of the call and its timer finishes first.
private final class RPCRace<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
    private let call = Mutex<Task<Void, Never>?>(nil)

    func arm(_ continuation: CheckedContinuation<T, any Error>) {
        self.continuation.withLock { $0 = continuation }
    }

    /// Keeps the call's task for `cancelCall`; cancels it at once if the timer already fired (it may
    /// fire before the task is handed over here, when the caller's thread is preempted meanwhile).
    func setCall(_ task: Task<Void, Never>) {
        call.withLock { $0 = task }
        if continuation.withLock({ $0 == nil }) { task.cancel() }
    }

    func cancelCall() {
        call.withLock { $0 }?.cancel()
    }

    func finish(_ result: Result<T, any Error>) {
        let waiting = continuation.withLock { value -> CheckedContinuation<T, any Error>? in
            defer { value = nil }
            return value
        }
        waiting?.resume(with: result)
    }
}

/// Runs `operation`, giving up after `timeout` even if the operation ignores cancellation (the
/// operation is cancelled then, and its late answer dropped).
func withRPCTimeout<T: Sendable>(
    _ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = RPCRace<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.arm(continuation)
        let timer = Task {
            do { try await Task.sleep(for: timeout) } catch { return }
            race.finish(.failure(RaftRPCTimeout()))
            race.cancelCall()
        }
        race.setCall(
            Task {
                let result: Result<T, any Error>
                do { result = .success(try await operation()) } catch { result = .failure(error) }
                timer.cancel()
                race.finish(result)
            })
    }
}
