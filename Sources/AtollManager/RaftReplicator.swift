import AtollClusterStore
import AtollCore
import AtollRaft
import Dispatch
import Synchronization

/// Commits the store's writes through the managers' consensus: the store's synchronous write
/// waits (on the `BlockingWork` thread it runs on) for the proposal to be applied here.
public struct RaftReplicator: StoreReplicator {
    let raft: RaftNode

    public init(_ raft: RaftNode) { self.raft = raft }

    public func replicate(_ command: [UInt8]) throws -> RaftApplyOutcome {
        let result = Mutex<Result<RaftApplyOutcome, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                let outcome = try await raft.propose(command)
                result.withLock { $0 = .success(outcome) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        switch result.withLock({ $0 }) {
        case .success(let outcome): return outcome
        case .failure(let error): throw Self.storeError(error)
        case nil: throw AtollError.internalError("a replicated write ended without an outcome")
        }
    }

    /// Consensus failures as the errors callers show.
    public static func storeError(_ error: any Error) -> any Error {
        guard let error = error as? RaftError else { return error }
        switch error {
        case .notLeader, .noQuorum, .stopped:
            return AtollError(.unavailable, "cannot change the cluster's state: \(error)")
        case .configurationChangeInProgress, .invalidConfiguration:
            return AtollError(.failedPrecondition, "\(error)")
        case .storage:
            return AtollError(.internalError, "\(error)")
        }
    }
}
