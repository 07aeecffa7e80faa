extension RaftNode {
    /// The servers the leader replicates to: the latest configuration, plus the previous one while
    /// the latest is uncommitted (so that a removed server receives its removal), minus itself.
    func replicationTargets() -> [String: RaftMember] {
        var targets: [String: RaftMember] = [:]
        for member in members where member.id != local.id { targets[member.id] = member }
        if configurationIndex > commitIndex {
            for member in previousMembers where member.id != local.id && targets[member.id] == nil {
                targets[member.id] = member
            }
        }
        return targets
    }

    /// Starts a replication task for each new target and ends those of servers no longer targeted.
    func syncReplicators() {
        guard role == .leader, lifecycle == .running else { return }
        let targets = replicationTargets()
        for (id, peer) in peers where targets[id] == nil {
            peer.task?.cancel()
            peer.sleeper?.cancel()
            peers[id] = nil
        }
        let now = clock.now
        for (id, member) in targets {
            if peers[id] != nil {
                peers[id]?.member = member
                continue
            }
            let generation = nextGeneration
            nextGeneration += 1
            peers[id] = Peer(
                member: member, nextIndex: lastIndex + 1, matchIndex: 0, since: now, lastAnswer: nil,
                generation: generation)
            let term = hardState.term
            peers[id]?.task = Task { await self.replicate(to: id, term: term, generation: generation) }
        }
    }

    /// Ends every replication task (on stepping down or stopping).
    func stopReplication() {
        for peer in peers.values {
            peer.task?.cancel()
            peer.sleeper?.cancel()
        }
        peers = [:]
    }

    /// Wakes every replication task at once, to send a newly appended entry.
    func wakeReplicators() {
        for id in peers.keys {
            peers[id]?.wakePending = true
            peers[id]?.sleeper?.cancel()
        }
    }

    func isCurrent(_ id: String, term: UInt64, generation: UInt64) -> Bool {
        lifecycle == .running && role == .leader && hardState.term == term && peers[id]?.generation == generation
    }

    /// One follower's replication: sends what it lacks (up to maxEntriesPerAppend per call) or a
    /// heartbeat every heartbeatInterval, walking nextIndex back on a mismatch.
    func replicate(to id: String, term: UInt64, generation: UInt64) async {
        while !Task.isCancelled && isCurrent(id, term: term, generation: generation) {
            guard let peer = peers[id] else { return }
            peers[id]?.wakePending = false
            let nextIndex = min(peer.nextIndex, lastIndex + 1)
            let request = RaftAppendRequest(
                term: term, leaderID: local.id, leaderAddress: local.address, prevLogIndex: nextIndex - 1,
                prevLogTerm: self.term(at: nextIndex - 1) ?? 0,
                entries: entries(from: nextIndex, maxCount: timing.maxEntriesPerAppend), leaderCommit: commitIndex)
            let sentAt = clock.now
            let transport = self.transport
            let member = peer.member
            let response: RaftAppendResponse?
            do {
                response = try await withRPCTimeout(timing.rpcTimeout) {
                    try await transport.appendEntries(request, to: member)
                }
            } catch {
                response = nil
            }
            // The actor may have changed while the call was out.
            guard isCurrent(id, term: term, generation: generation) else { return }
            if let response {
                if response.term > hardState.term {
                    logger.info(
                        "a follower has a newer term",
                        metadata: ["follower": "\(id)", "term": "\(response.term)"])
                    if !adoptTerm(response.term) { becomeFollower(leader: nil) }
                    return
                }
                peers[id]?.lastAnswer = clock.now
                if response.success {
                    let match = max(peer.matchIndex, min(response.matchIndex, lastIndex))
                    peers[id]?.matchIndex = match
                    peers[id]?.nextIndex = match + 1
                    advanceCommit()
                    guard isCurrent(id, term: term, generation: generation) else { return }
                    // More to send: go on at once (only while the follower progresses, so that a
                    // misbehaving one cannot make this loop spin).
                    if match < lastIndex && match > peer.matchIndex { continue }
                } else {
                    // Retry at once from where the follower says its log diverges; a follower that
                    // refuses even from index 1 (it cannot store) is retried at the next heartbeat.
                    let conflict = response.conflictIndex > 0 ? response.conflictIndex : nextIndex - 1
                    let retryFrom = max(1, min(conflict, nextIndex - 1))
                    peers[id]?.nextIndex = retryFrom
                    if retryFrom < nextIndex { continue }
                }
            }
            await waitForWake(id, generation: generation, until: sentAt + timing.heartbeatInterval)
        }
    }

    /// Sleeps until `deadline` or until an append wakes this follower's task.
    func waitForWake(_ id: String, generation: UInt64, until deadline: ContinuousClock.Instant) async {
        guard let peer = peers[id], peer.generation == generation, !peer.wakePending else { return }
        let remaining = deadline - clock.now
        guard remaining > .zero else { return }
        let sleeper = Task.detached { _ = try? await Task.sleep(for: remaining) }
        peers[id]?.sleeper = sleeper
        await sleeper.value
        if peers[id]?.generation == generation { peers[id]?.sleeper = nil }
    }

    /// Commits the highest entry of the current term stored on a majority (§5.3, §5.4.2), applies,
    /// and ends replication to servers whose removal just committed; a leader whose own removal
    /// committed steps down.
    func advanceCommit() {
        guard role == .leader else { return }
        var candidate = lastIndex
        let previous = commitIndex
        while candidate > commitIndex, term(at: candidate) == hardState.term {
            let stored = members.filter { member in
                member.id == local.id ? true : (peers[member.id]?.matchIndex ?? 0) >= candidate
            }
            if stored.count >= quorumSize {
                commitIndex = candidate
                break
            }
            candidate -= 1
        }
        guard commitIndex > previous else { return }
        applyCommitted()
        if configurationIndex > previous && configurationIndex <= commitIndex {
            if !isVoter {
                logger.info("this server's removal is committed")
                becomeFollower(leader: nil)
                return
            }
            syncReplicators()
        }
    }

    /// Voting members (this one included) heard from within the maximum election timeout.
    func reachableVoters(now: ContinuousClock.Instant) -> Int {
        members.filter { member in
            if member.id == local.id { return true }
            guard let peer = peers[member.id] else { return false }
            return now - (peer.lastAnswer ?? peer.since) < timing.electionTimeout.upperBound
        }.count
    }

    /// A leader that has not heard from a quorum for an election timeout steps down, so that a
    /// partitioned old leader stops claiming leadership.
    func checkQuorum(now: ContinuousClock.Instant) {
        guard now - leaderSince >= timing.electionTimeout.upperBound else { return }
        let reachable = reachableVoters(now: now)
        if reachable < quorumSize {
            logger.warning(
                "stepping down: no quorum answers",
                metadata: ["reachable": "\(reachable)", "members": "\(members.count)"])
            becomeFollower(leader: nil)
        }
    }
}
