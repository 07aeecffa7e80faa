import Foundation
import Synchronization

/// When each node was last heard from. Kept in memory, not in the store: a heartbeat every few
/// seconds from every node would otherwise be a durable write each; only the transitions it
/// causes (ready, down) are written.
public final class NodeHealth: Sendable {
    private let lastSeen = Mutex<[String: Date]>([:])

    public init() {}

    /// Records a heartbeat from `nodeID` at `now`.
    public func beat(_ nodeID: String, now: Date = Date()) {
        lastSeen.withLock { $0[nodeID] = now }
    }

    /// Gives every node in `nodeIDs` a fresh start, as if each had just called: a manager that
    /// restarts does not mark nodes down for the time it was away.
    public func grace(_ nodeIDs: [String], now: Date = Date()) {
        lastSeen.withLock { seen in for id in nodeIDs where seen[id] == nil { seen[id] = now } }
    }

    public func forget(_ nodeID: String) {
        _ = lastSeen.withLock { $0.removeValue(forKey: nodeID) }
    }

    /// The nodes of `nodeIDs` not heard from for longer than `timeout` (or never).
    public func silent(_ nodeIDs: [String], timeout: TimeInterval, now: Date = Date()) -> [String] {
        lastSeen.withLock { seen in
            nodeIDs.filter { id in seen[id].map { now.timeIntervalSince($0) > timeout } ?? true }
        }
    }
}
