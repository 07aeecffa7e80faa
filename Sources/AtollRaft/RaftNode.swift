import Logging

/// One Raft server: leader election, log replication and single-server membership changes, as in
/// the Raft paper (Ongaro & Ousterhout, extended version) and Ongaro's dissertation §4.1–4.2, with
/// the dissertation's pre-vote (§9.6).
///
/// There is no log compaction and no snapshot. The node calls its storage synchronously (the
/// storage is expected to be a local database) and its transport asynchronously; the actor is
/// reentrant across transport calls, so every continuation after an `await` rechecks the term and
/// the role. The parts live in extensions: election (`RaftNode+Election`), the follower side
/// (`RaftNode+Follower`), the leader side (`RaftNode+Replication`), the log (`RaftNode+Log`) and the
/// client calls (`RaftNode+Proposals`).
public actor RaftNode {
    enum Lifecycle { case created, running, stopped }

    /// A follower as the leader sees it (§5.3), and the task that replicates to it.
    struct Peer {
        var member: RaftMember
        /// Index of the next entry to send.
        var nextIndex: UInt64
        /// Highest index known to be stored on the follower.
        var matchIndex: UInt64
        /// When this leader started tracking it; stands for its last answer until there is one.
        let since: ContinuousClock.Instant
        var lastAnswer: ContinuousClock.Instant?
        /// Tells a stale replication task (of an earlier leadership or membership) to end.
        let generation: UInt64
        var task: Task<Void, Never>?
        /// The heartbeat wait of the task; cancelled to wake the task when an entry is appended.
        var sleeper: Task<Void, Never>?
        var wakePending = false
    }

    /// A caller waiting for an entry to be applied here.
    struct Waiter {
        let index: UInt64
        let term: UInt64
        let timeout: Duration
        let since: ContinuousClock.Instant
        let continuation: CheckedContinuation<RaftApplyOutcome, any Error>
        let timer: Task<Void, Never>
    }

    /// A pre-election (dissertation §9.6) under way: the servers that would vote for this one in
    /// `term` (its current term + 1), itself included.
    struct PreElection {
        /// Tells the answers to an earlier pre-election apart, to drop them.
        let round: UInt64
        let term: UInt64
        var grants: Set<String>
    }

    /// What `statusChanges()` reports a change of.
    struct PublishedState: Equatable {
        let role: RaftRole
        let term: UInt64
        let leader: RaftMember?
        let members: [RaftMember]
    }

    let local: RaftMember
    let storage: any RaftStorage
    let transport: any RaftTransport
    let timing: RaftTiming
    let logger: Logger
    let clock = ContinuousClock()

    var lifecycle = Lifecycle.created

    // Persistent state, mirrored from storage.
    var hardState = RaftHardState(term: 0, votedFor: nil)
    /// Entry with index `i` is `log[i - 1]`.
    var log: [RaftEntry] = []

    // Volatile state.
    var role = RaftRole.follower
    var leader: RaftMember?
    var commitIndex: UInt64 = 0
    var appliedIndex: UInt64 = 0
    /// The latest configuration in the log, committed or not (dissertation §4.1).
    var members: [RaftMember] = []
    var configurationIndex: UInt64 = 0
    /// The configuration before the latest one; the leader keeps replicating to its members until
    /// the latest one commits, so that a removed server learns of its removal.
    var previousMembers: [RaftMember] = []

    var electionDeadline: ContinuousClock.Instant
    var lastLeaderContact: ContinuousClock.Instant?
    var ticker: Task<Void, Never>?

    // Candidate state.
    var votes: Set<String> = []
    /// The pre-election this server runs (as a follower, or as a candidate whose election timed out).
    var preElection: PreElection?
    /// How many pre-elections this server started.
    var preElectionRounds: UInt64 = 0

    // Leader state.
    var peers: [String: Peer] = [:]
    var leaderSince: ContinuousClock.Instant
    /// Index of the noop this leader appended when elected.
    var termStartIndex: UInt64 = 0
    var nextGeneration: UInt64 = 0

    var waiters: [UInt64: Waiter] = [:]
    var nextWaiterID: UInt64 = 0

    var subscribers: [UInt64: AsyncStream<RaftStatus>.Continuation] = [:]
    var nextSubscriberID: UInt64 = 0
    var published: PublishedState?

    /// - Parameters:
    ///   - member: this server.
    ///   - storage: its log, hard state and state machine.
    ///   - transport: how it reaches the other servers.
    public init(
        self member: RaftMember, storage: any RaftStorage, transport: any RaftTransport,
        timing: RaftTiming = .default, logger: Logger = Logger(label: "atoll.raft")
    ) {
        self.local = member
        self.storage = storage
        self.transport = transport
        self.timing = timing
        var logger = logger
        logger[metadataKey: "raft.member"] = "\(member.id)"
        self.logger = logger
        let now = ContinuousClock.now
        self.electionDeadline = now
        self.leaderSince = now
    }

    /// Loads storage; commitIndex starts at appliedIndex; starts the election timer and (if leader)
    /// replication. A server whose latest configuration does not contain itself (e.g. a newly joining
    /// server with an empty log) never starts an election; it only follows. A configuration of one
    /// member that is itself elects itself at once (no waiting for a timeout).
    public func start() throws {
        switch lifecycle {
        case .running: return
        case .stopped: throw RaftError.stopped
        case .created: break
        }
        let loaded: (hardState: RaftHardState, entries: [RaftEntry], appliedIndex: UInt64)
        do {
            loaded = try storage.load()
        } catch {
            throw RaftError.storage("cannot load the raft state: \(error)")
        }
        for (offset, entry) in loaded.entries.enumerated() where entry.index != UInt64(offset + 1) {
            throw RaftError.storage("log entry at position \(offset + 1) has index \(entry.index)")
        }
        guard loaded.appliedIndex <= UInt64(loaded.entries.count) else {
            throw RaftError.storage(
                "applied index \(loaded.appliedIndex) is past the last log entry \(loaded.entries.count)")
        }
        hardState = loaded.hardState
        log = loaded.entries
        appliedIndex = loaded.appliedIndex
        commitIndex = loaded.appliedIndex
        reloadConfiguration()
        lifecycle = .running
        resetElectionTimer()
        ticker = Task { await self.runTicker() }
        logger.info(
            "raft server started",
            metadata: [
                "term": "\(hardState.term)", "last-index": "\(lastIndex)", "applied-index": "\(appliedIndex)",
                "members": "\(members.map(\.id))",
            ])
        if members.count == 1 && isVoter {
            startElection()
        }
        publishStatus()
    }

    /// Stops every timer and replication task; pending proposals fail with .stopped. Idempotent.
    public func stop() async {
        guard lifecycle != .stopped else { return }
        lifecycle = .stopped
        ticker?.cancel()
        ticker = nil
        stopReplication()
        role = .follower
        leader = nil
        votes = []
        preElection = nil
        failWaiters(RaftError.stopped)
        let final = status
        for subscriber in subscribers.values {
            subscriber.yield(final)
            subscriber.finish()
        }
        subscribers = [:]
        logger.info("raft server stopped", metadata: ["term": "\(hardState.term)"])
    }

    public var status: RaftStatus {
        var contact: [String: Double] = [:]
        if role == .leader {
            let now = clock.now
            for (id, peer) in peers {
                if let answer = peer.lastAnswer { contact[id] = (now - answer).inSeconds }
            }
        }
        return RaftStatus(
            role: role, term: hardState.term, leader: leader, members: members, commitIndex: commitIndex,
            appliedIndex: appliedIndex, lastIndex: lastIndex, lastContact: contact)
    }

    /// A stream of the status each time role, term, leader or members change (and the current
    /// status first). Several subscribers allowed; ends on stop().
    public func statusChanges() -> AsyncStream<RaftStatus> {
        let (stream, continuation) = AsyncStream<RaftStatus>.makeStream(bufferingPolicy: .bufferingNewest(64))
        continuation.yield(status)
        guard lifecycle != .stopped else {
            continuation.finish()
            return stream
        }
        let id = nextSubscriberID
        nextSubscriberID += 1
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.removeSubscriber(id) }
        }
        return stream
    }

    func removeSubscriber(_ id: UInt64) {
        subscribers[id] = nil
    }

    /// Sends the status to subscribers if role, term, leader or members changed since last time.
    func publishStatus() {
        let state = PublishedState(role: role, term: hardState.term, leader: leader, members: members)
        guard state != published else { return }
        published = state
        let current = status
        for subscriber in subscribers.values { subscriber.yield(current) }
    }

    /// Runs periodic work: election timeouts, the leader's quorum check, and retrying a failed apply.
    func runTicker() async {
        let interval = max(min(timing.heartbeatInterval, timing.electionTimeout.lowerBound / 10), .milliseconds(1))
        while lifecycle == .running && !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard lifecycle == .running else { return }
            tick()
        }
    }

    func tick() {
        let now = clock.now
        if appliedIndex < commitIndex { applyCommitted() }
        switch role {
        case .leader:
            checkQuorum(now: now)
        case .follower, .candidate:
            if now >= electionDeadline { electionTimedOut() }
        }
    }
}
