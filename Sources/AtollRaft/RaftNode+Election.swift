extension RaftNode {
    /// Picks a new random election deadline (§5.2).
    func resetElectionTimer() {
        electionDeadline = clock.now + Duration.random(in: timing.electionTimeout)
    }

    /// No leader was heard from for an election timeout (or an election timed out): a voter runs a
    /// pre-election.
    func electionTimedOut() {
        leader = nil
        if isVoter {
            startPreElection()
        } else {
            // Not in the configuration (yet, or any more): never campaign, only follow.
            resetElectionTimer()
            publishStatus()
        }
    }

    /// Moves to a newer term if `term` is one (persisting it first) and, if it was a candidate or
    /// leader, becomes a follower. False when the new term could not be saved.
    func adoptTerm(_ term: UInt64) -> Bool {
        guard term > hardState.term else { return true }
        guard persist(RaftHardState(term: term, votedFor: nil)) else { return false }
        preElection = nil
        if role == .follower {
            leader = nil
            publishStatus()
        } else {
            becomeFollower(leader: nil)
        }
        return true
    }

    /// Becomes a follower of `leader` (nil when unknown) in the current term. A leader stops
    /// replicating and fails its waiting callers with notLeader.
    func becomeFollower(leader newLeader: RaftMember?) {
        let wasLeader = role == .leader
        role = .follower
        leader = newLeader
        votes = []
        preElection = nil
        if wasLeader {
            logger.info("stepping down", metadata: ["term": "\(hardState.term)"])
            stopReplication()
            failWaiters(RaftError.notLeader(leader: newLeader))
        }
        resetElectionTimer()
        publishStatus()
    }

    /// Asks every other member whether it would vote for this server in the next term, without
    /// moving to that term, voting or persisting anything (dissertation §9.6); only a majority of
    /// pre-votes starts the real election. So a server that cannot win — partitioned, restarted before
    /// the leader reconnected to it, or with a stale log — does not raise its term, and cannot depose a
    /// working leader later by answering it with a newer term.
    func startPreElection() {
        guard lifecycle == .running, isVoter else { return }
        resetElectionTimer()
        preElectionRounds += 1
        let round = preElectionRounds
        let term = hardState.term + 1
        preElection = PreElection(round: round, term: term, grants: [local.id])
        logger.debug("starting a pre-election", metadata: ["term": "\(term)"])
        publishStatus()
        if hasQuorum([local.id]) {
            startElection()
            return
        }
        requestVotes(
            RaftVoteRequest(
                term: term, candidateID: local.id, lastLogIndex: lastIndex, lastLogTerm: lastTerm, preVote: true),
            preElectionRound: round)
    }

    func receivePreVote(_ response: RaftVoteResponse, from voter: String, round: UInt64) {
        guard lifecycle == .running else { return }
        if response.term > hardState.term {
            _ = adoptTerm(response.term)
            return
        }
        guard response.granted, var current = preElection, current.round == round,
            current.term == hardState.term + 1, role != .leader, leader == nil
        else { return }
        current.grants.insert(voter)
        preElection = current
        if hasQuorum(current.grants) { startElection() }
    }

    /// Becomes a candidate in a new term, votes for itself and asks every other member (§5.2).
    func startElection() {
        guard lifecycle == .running, isVoter else { return }
        let term = hardState.term + 1
        resetElectionTimer()
        preElection = nil
        guard persist(RaftHardState(term: term, votedFor: local.id)) else { return }
        role = .candidate
        leader = nil
        votes = [local.id]
        logger.debug("starting an election", metadata: ["term": "\(term)"])
        publishStatus()
        if hasQuorum(votes) {
            becomeLeader()
            return
        }
        requestVotes(
            RaftVoteRequest(term: term, candidateID: local.id, lastLogIndex: lastIndex, lastLogTerm: lastTerm),
            preElectionRound: 0)
    }

    /// Sends `request` to every other member and hands each answer to receivePreVote (with
    /// `preElectionRound`) or receiveVote.
    func requestVotes(_ request: RaftVoteRequest, preElectionRound: UInt64) {
        let transport = self.transport
        let timeout = timing.rpcTimeout
        for peer in members where peer.id != local.id {
            Task {
                let response: RaftVoteResponse
                do {
                    response = try await withRPCTimeout(timeout) {
                        try await transport.requestVote(request, to: peer)
                    }
                } catch {
                    return  // unreachable: the next (pre-)election tries again
                }
                if request.preVote {
                    self.receivePreVote(response, from: peer.id, round: preElectionRound)
                } else {
                    self.receiveVote(response, from: peer.id, electionTerm: request.term)
                }
            }
        }
    }

    func receiveVote(_ response: RaftVoteResponse, from voter: String, electionTerm: UInt64) {
        guard lifecycle == .running else { return }
        if response.term > hardState.term {
            _ = adoptTerm(response.term)
            return
        }
        guard role == .candidate, hardState.term == electionTerm, response.granted else { return }
        votes.insert(voter)
        if hasQuorum(votes) { becomeLeader() }
    }

    /// Whether `ids` hold a majority of the latest configuration.
    func hasQuorum(_ ids: Set<String>) -> Bool {
        members.filter { ids.contains($0.id) }.count >= quorumSize
    }

    /// Takes the lead: appends a noop of the new term (so that earlier entries can commit, §5.4.2)
    /// and starts replicating.
    func becomeLeader() {
        role = .leader
        leader = local
        votes = []
        preElection = nil
        leaderSince = clock.now
        stopReplication()
        logger.info("elected leader", metadata: ["term": "\(hardState.term)", "members": "\(members.map(\.id))"])
        publishStatus()
        syncReplicators()
        do {
            termStartIndex = try appendLocal(.noop, data: []).index
        } catch {
            logger.error("cannot append the leader's noop entry", metadata: ["error": "\(error)"])
            becomeFollower(leader: nil)
        }
    }

    /// RequestVote (§5.2, §5.4.1), with the dissertation's §4.2.3 guard: a server that heard from a
    /// leader within the minimum election timeout (or is the leader) ignores a request for a newer
    /// term, so a removed or partitioned server cannot disrupt a working cluster. A pre-vote (§9.6) is
    /// answered without changing anything here (see `grantsPreVote`).
    public func handleVote(_ request: RaftVoteRequest) -> RaftVoteResponse {
        let refused = { RaftVoteResponse(term: self.hardState.term, granted: false) }
        guard lifecycle == .running, request.term >= hardState.term else { return refused() }
        if request.preVote {
            return RaftVoteResponse(term: hardState.term, granted: grantsPreVote(request))
        }
        if request.term > hardState.term && heardFromLeaderRecently() {
            logger.debug(
                "ignoring a vote request while a leader is active",
                metadata: ["candidate": "\(request.candidateID)", "term": "\(request.term)"])
            return refused()
        }
        guard adoptTerm(request.term) else { return refused() }
        guard isUpToDate(request) else { return refused() }
        if let votedFor = hardState.votedFor, votedFor != request.candidateID { return refused() }
        guard persist(RaftHardState(term: hardState.term, votedFor: request.candidateID)) else { return refused() }
        resetElectionTimer()
        return RaftVoteResponse(term: hardState.term, granted: true)
    }

    /// Whether this server would vote for the pre-vote's candidate in `request.term` (at least this
    /// server's term): no leader was heard from within the minimum election timeout (§4.2.3), the
    /// candidate's log is at least as up to date as this one, and, in this server's own term, it has
    /// not voted for another. Changes neither the term, the vote nor the election timer.
    func grantsPreVote(_ request: RaftVoteRequest) -> Bool {
        if heardFromLeaderRecently() {
            logger.debug(
                "refusing a pre-vote while a leader is active",
                metadata: ["candidate": "\(request.candidateID)", "term": "\(request.term)"])
            return false
        }
        guard isUpToDate(request) else { return false }
        if request.term == hardState.term, let votedFor = hardState.votedFor, votedFor != request.candidateID {
            return false
        }
        return true
    }

    /// Whether the candidate's log is at least as up to date as this server's (§5.4.1).
    func isUpToDate(_ request: RaftVoteRequest) -> Bool {
        request.lastLogTerm > lastTerm || (request.lastLogTerm == lastTerm && request.lastLogIndex >= lastIndex)
    }

    func heardFromLeaderRecently() -> Bool {
        if role == .leader { return true }
        guard leader != nil, let contact = lastLeaderContact else { return false }
        return clock.now - contact < timing.electionTimeout.lowerBound
    }
}
