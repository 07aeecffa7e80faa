import Foundation
import Synchronization

/// When each node was last heard from. Kept in memory, not in the store: a heartbeat every few
/// seconds from every node would otherwise be a durable write each; only the transitions it
/// causes (ready, down) are written.
public final class NodeHealth: Sendable {
    private struct State {
        var lastSeen: [String: Date] = [:]
        /// Silent nodes already reported by `newlySilent`, until they beat again.
        var reported: Set<String> = []
    }
    private let state = Mutex(State())

    public init() {}

    /// Records a heartbeat from `nodeID` at `now`.
    public func beat(_ nodeID: String, now: Date = Date()) {
        state.withLock {
            $0.lastSeen[nodeID] = now
            $0.reported.remove(nodeID)
        }
    }

    /// Gives every node in `nodeIDs` a fresh start, as if each had just called: a manager that
    /// restarts does not mark nodes down for the time it was away.
    public func grace(_ nodeIDs: [String], now: Date = Date()) {
        state.withLock { state in for id in nodeIDs where state.lastSeen[id] == nil { state.lastSeen[id] = now } }
    }

    /// Lets `newlySilent` report a node again (marking it down failed).
    public func unreport(_ nodeID: String) {
        _ = state.withLock { $0.reported.remove(nodeID) }
    }

    public func forget(_ nodeID: String) {
        state.withLock {
            $0.lastSeen.removeValue(forKey: nodeID)
            $0.reported.remove(nodeID)
        }
    }

    /// The nodes not heard from for longer than `timeout` that were not reported before (each
    /// is reported once per silence).
    public func newlySilent(timeout: TimeInterval, now: Date = Date()) -> [String] {
        state.withLock { state in
            let silent = state.lastSeen.filter {
                now.timeIntervalSince($0.value) > timeout && !state.reported.contains($0.key)
            }
            .map(\.key)
            state.reported.formUnion(silent)
            return silent
        }
    }
}
