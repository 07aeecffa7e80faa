/// The clocks of a Raft server. The election timeout must be well above the heartbeat interval
/// and the round-trip time (the paper suggests 10× or more).
public struct RaftTiming: Sendable {
    /// How often a leader sends an AppendEntries to an idle follower.
    public var heartbeatInterval: Duration
    /// A follower that hears nothing from a leader for a random time in this range campaigns; a
    /// leader that hears from no quorum for the upper bound steps down.
    public var electionTimeout: ClosedRange<Duration>
    /// A transport call is given up after this.
    public var rpcTimeout: Duration
    /// At most this many entries in one AppendEntries.
    public var maxEntriesPerAppend: Int

    public static let `default` = RaftTiming()

    public init(
        heartbeatInterval: Duration = .milliseconds(150),
        electionTimeout: ClosedRange<Duration> = .milliseconds(1000)...(.milliseconds(2000)),
        rpcTimeout: Duration = .seconds(2),
        maxEntriesPerAppend: Int = 256
    ) {
        self.heartbeatInterval = heartbeatInterval
        self.electionTimeout = electionTimeout
        self.rpcTimeout = rpcTimeout
        self.maxEntriesPerAppend = max(1, maxEntriesPerAppend)
    }
}
