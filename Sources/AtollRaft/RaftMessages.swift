/// RequestVote arguments (§5.2), or a pre-vote (dissertation §9.6).
public struct RaftVoteRequest: Sendable, Equatable {
    /// The term the candidate campaigns in; for a pre-vote, the term it would campaign in (its
    /// current term + 1), which it has not moved to.
    public var term: UInt64
    public var candidateID: String
    public var lastLogIndex: UInt64
    public var lastLogTerm: UInt64
    /// A pre-vote: "would you vote for me?". The receiver answers as it would a vote but changes
    /// neither its term, its vote nor its timers.
    public var preVote: Bool

    public init(term: UInt64, candidateID: String, lastLogIndex: UInt64, lastLogTerm: UInt64, preVote: Bool = false) {
        self.term = term
        self.candidateID = candidateID
        self.lastLogIndex = lastLogIndex
        self.lastLogTerm = lastLogTerm
        self.preVote = preVote
    }
}

/// RequestVote results.
public struct RaftVoteResponse: Sendable, Equatable {
    /// The voter's current term, for the candidate to update itself.
    public var term: UInt64
    public var granted: Bool

    public init(term: UInt64, granted: Bool) {
        self.term = term
        self.granted = granted
    }
}

/// AppendEntries arguments (§5.3); empty `entries` is a heartbeat.
public struct RaftAppendRequest: Sendable, Equatable {
    public var term: UInt64
    public var leaderID: String
    /// So that followers can tell clients where the leader is.
    public var leaderAddress: String
    public var prevLogIndex: UInt64
    public var prevLogTerm: UInt64
    public var entries: [RaftEntry]
    public var leaderCommit: UInt64

    public init(
        term: UInt64, leaderID: String, leaderAddress: String, prevLogIndex: UInt64, prevLogTerm: UInt64,
        entries: [RaftEntry], leaderCommit: UInt64
    ) {
        self.term = term
        self.leaderID = leaderID
        self.leaderAddress = leaderAddress
        self.prevLogIndex = prevLogIndex
        self.prevLogTerm = prevLogTerm
        self.entries = entries
        self.leaderCommit = leaderCommit
    }
}

/// AppendEntries results.
public struct RaftAppendResponse: Sendable, Equatable {
    /// The follower's current term, for the leader to update itself.
    public var term: UInt64
    public var success: Bool
    /// On success: the index of the last entry the follower now has matching the leader (prevLogIndex + entries.count).
    public var matchIndex: UInt64
    /// On failure: where the leader should retry from (the follower's last index + 1 when its log is
    /// shorter than prevLogIndex, else the first index of the conflicting term) — the paper's
    /// "accelerated log backtracking" optimisation.
    public var conflictIndex: UInt64

    public init(term: UInt64, success: Bool, matchIndex: UInt64, conflictIndex: UInt64) {
        self.term = term
        self.success = success
        self.matchIndex = matchIndex
        self.conflictIndex = conflictIndex
    }
}
