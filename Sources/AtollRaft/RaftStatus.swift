/// The role a server plays in its current term.
public enum RaftRole: String, Sendable {
    case follower, candidate, leader
}

/// A snapshot of a server's Raft state, for status pages and health checks.
public struct RaftStatus: Sendable, Equatable {
    public var role: RaftRole
    public var term: UInt64
    /// Known leader (self when leader), nil when unknown.
    public var leader: RaftMember?
    /// Latest configuration in the log (empty before one arrives).
    public var members: [RaftMember]
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var lastIndex: UInt64
    /// Leader only: member id -> seconds since that follower last answered an AppendEntries
    /// (followers that never answered this leader are absent); others: empty.
    public var lastContact: [String: Double]

    public init(
        role: RaftRole, term: UInt64, leader: RaftMember?, members: [RaftMember], commitIndex: UInt64,
        appliedIndex: UInt64, lastIndex: UInt64, lastContact: [String: Double]
    ) {
        self.role = role
        self.term = term
        self.leader = leader
        self.members = members
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.lastIndex = lastIndex
        self.lastContact = lastContact
    }
}
