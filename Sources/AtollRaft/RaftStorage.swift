/// The state a server must keep across restarts besides its log (§5.1 of the Raft paper).
public struct RaftHardState: Codable, Sendable, Equatable {
    /// Latest term this server has seen.
    public var term: UInt64
    /// The candidate this server voted for in `term`, if any.
    public var votedFor: String?

    public init(term: UInt64, votedFor: String?) {
        self.term = term
        self.votedFor = votedFor
    }
}

/// What the state machine says of a command: applied, or refused deterministically (the same on
/// every replica: e.g. an optimistic-concurrency version check failed). The proposer gets it back.
public enum RaftApplyOutcome: Sendable, Equatable {
    case applied
    case refused(String)
}

/// Durable storage for one server's log and hard state, and the state machine.
public protocol RaftStorage: Sendable {
    /// Read once at start: the hard state, every entry in index order (indexes 1...n, contiguous),
    /// and the index of the last entry already applied to the state machine (entries up to it are
    /// known committed).
    func load() throws -> (hardState: RaftHardState, entries: [RaftEntry], appliedIndex: UInt64)
    /// Durable before it returns (called before answering a vote or after a term change).
    func save(_ hardState: RaftHardState) throws
    /// Deletes every entry with index >= `entries.first.index` and then stores `entries`; durable
    /// before it returns. Never called with an empty array.
    func append(_ entries: [RaftEntry]) throws
    /// Applies one committed entry (every kind: a configuration or noop entry only records that it is
    /// applied) and records `entry.index` as applied in the same transaction. Called in index order,
    /// exactly once per entry per server lifetime (after a restart, from appliedIndex+1).
    /// Throwing means "could not apply now" (disk full…): the core logs it and retries later without
    /// advancing.
    func apply(_ entry: RaftEntry) throws -> RaftApplyOutcome
}
