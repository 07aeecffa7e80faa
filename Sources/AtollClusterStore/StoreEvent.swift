import Synchronization

/// One committed change to the store: what kind of object, what happened to it, and the version
/// it has now (for `removed`, the last version it had).
public struct StoreEvent: Sendable, Equatable {
    public enum Kind: String, Sendable { case node, cluster }
    public enum Action: String, Sendable { case created, updated, removed }

    public var kind: Kind
    public var action: Action
    public var id: String
    public var version: Int64

    public init(kind: Kind, action: Action, id: String, version: Int64) {
        self.kind = kind
        self.action = action
        self.id = id
        self.version = version
    }
}

/// The subscribers to a store's events: a lock-protected table of stream continuations. A
/// subscriber leaves the table when its stream terminates (its consumer stops or is cancelled).
final class EventHub: Sendable {
    /// Events kept for a subscriber that does not keep up; older ones are dropped beyond this.
    static let bufferLimit = 1024

    private struct State {
        var nextID: UInt64 = 0
        var subscribers: [UInt64: AsyncStream<StoreEvent>.Continuation] = [:]
        var closed = false
    }
    private let state = Mutex(State())

    /// A stream of every event published from now on. After `finish()`, a stream that ends at once.
    func subscribe() -> AsyncStream<StoreEvent> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: StoreEvent.self, bufferingPolicy: .bufferingNewest(Self.bufferLimit))
        let id: UInt64? = state.withLock { state in
            guard !state.closed else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        return stream
    }

    /// Hands `events` to every subscriber. Callers publish one committed transaction at a time.
    func publish(_ events: [StoreEvent]) {
        let continuations = state.withLock { Array($0.subscribers.values) }
        for continuation in continuations {
            for event in events { continuation.yield(event) }
        }
    }

    /// Ends every subscriber's stream, and any later one's at once.
    func finish() {
        let continuations = state.withLock { state in
            state.closed = true
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for continuation in continuations { continuation.finish() }
    }

    var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    private func remove(_ id: UInt64) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: id) }
    }
}
