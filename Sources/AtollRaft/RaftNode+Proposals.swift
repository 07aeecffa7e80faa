extension RaftNode {
    /// Leader only: appends a command entry, replicates, waits until it is committed AND applied on
    /// this server, returns the state machine's outcome.
    ///
    /// Throws `notLeader` (with the known leader) when this server is not the leader, `noQuorum`
    /// after `timeout`, `stopped`. If leadership is lost before the entry commits, throws
    /// `notLeader`: the entry may or may not commit later (a new leader may have it), so a caller
    /// that retries must make the command idempotent or check first. `noQuorum` carries the same
    /// uncertainty. Cancelling the calling task does not withdraw the entry (the call still
    /// waits for its outcome or the timeout).
    public func propose(_ command: [UInt8], timeout: Duration = .seconds(10)) async throws -> RaftApplyOutcome {
        try requireLeader()
        return try await appendAndWait(.command, data: command, timeout: timeout)
    }

    /// Leader only: appends a configuration = current members + member (takes effect at once, as
    /// the dissertation says). Returns once appended locally — it does NOT wait for commit (the new
    /// server may only start serving after the caller answers it). Refuses while another change is
    /// uncommitted; refuses a member id already present (invalidConfiguration).
    ///
    /// A new leader first waits (up to 10 s) for its noop to commit: a leader must not change the
    /// membership before an entry of its term is committed (the fix to single-server changes
    /// Ongaro posted in 2015).
    public func addMember(_ member: RaftMember) async throws {
        try requireLeader()
        try await barrier()
        try requireLeader()
        guard configurationIndex <= commitIndex else { throw RaftError.configurationChangeInProgress }
        guard !member.id.isEmpty else { throw RaftError.invalidConfiguration("a member needs an id") }
        guard !members.contains(where: { $0.id == member.id }) else {
            throw RaftError.invalidConfiguration("a member with id \"\(member.id)\" exists")
        }
        let data = try RaftEntry.configuration(index: 0, term: 0, members: members + [member]).data
        let entry = try appendLocal(.configuration, data: data)
        logger.info("added a member", metadata: ["member": "\(member.id)", "index": "\(entry.index)"])
    }

    /// Leader only: appends a configuration without `id`, waits until committed (timeout), then, if
    /// the leader removed itself, steps down. Removing the last member → invalidConfiguration;
    /// removing an id that is not a member → invalidConfiguration.
    public func removeMember(id: String, timeout: Duration = .seconds(10)) async throws {
        try requireLeader()
        try await barrier(timeout: timeout)
        try requireLeader()
        guard configurationIndex <= commitIndex else { throw RaftError.configurationChangeInProgress }
        guard members.contains(where: { $0.id == id }) else {
            throw RaftError.invalidConfiguration("no member has id \"\(id)\"")
        }
        let remaining = members.filter { $0.id != id }
        guard !remaining.isEmpty else { throw RaftError.invalidConfiguration("cannot remove the last member") }
        let data = try RaftEntry.configuration(index: 0, term: 0, members: remaining).data
        logger.info("removing a member", metadata: ["member": "\(id)"])
        // advanceCommit steps a leader down once its own removal commits.
        _ = try await appendAndWait(.configuration, data: data, timeout: timeout)
    }

    /// Leader only: waits until an entry of the current term is committed and applied here (the
    /// leader appends a noop on election; this waits for it): after it returns, the local state
    /// machine reflects everything committed before this leader. Throws notLeader / noQuorum.
    public func barrier(timeout: Duration = .seconds(10)) async throws {
        try requireLeader()
        guard appliedIndex < termStartIndex else { return }
        let index = termStartIndex
        let term = hardState.term
        _ = try await withCheckedThrowingContinuation { continuation in
            register(index: index, term: term, timeout: timeout, continuation: continuation)
        }
    }

    func requireLeader() throws {
        guard lifecycle == .running else { throw RaftError.stopped }
        guard role == .leader else { throw RaftError.notLeader(leader: leader) }
    }

    /// Appends an entry of the current term and replicates it at once. Leader only.
    @discardableResult
    func appendLocal(_ kind: RaftEntry.Kind, data: [UInt8]) throws -> RaftEntry {
        let entry = RaftEntry(index: lastIndex + 1, term: hardState.term, kind: kind, data: data)
        try storeEntries([entry])
        if kind == .configuration {
            syncReplicators()
            publishStatus()
        }
        wakeReplicators()
        advanceCommit()  // a single voter commits at once
        return entry
    }

    /// Appends an entry and waits for it to be applied here. The waiter is registered before the
    /// append because a single voter commits and applies within the append.
    func appendAndWait(_ kind: RaftEntry.Kind, data: [UInt8], timeout: Duration) async throws -> RaftApplyOutcome {
        try await withCheckedThrowingContinuation { continuation in
            let id = register(index: lastIndex + 1, term: hardState.term, timeout: timeout, continuation: continuation)
            do {
                try appendLocal(kind, data: data)
            } catch {
                finishWaiter(id, .failure(error))
            }
        }
    }

    @discardableResult
    func register(
        index: UInt64, term: UInt64, timeout: Duration, continuation: CheckedContinuation<RaftApplyOutcome, any Error>
    ) -> UInt64 {
        let id = nextWaiterID
        nextWaiterID += 1
        let timer = Task { [weak self] in
            do { try await Task.sleep(for: timeout) } catch { return }
            await self?.expireWaiter(id)
        }
        waiters[id] = Waiter(
            index: index, term: term, timeout: timeout, since: clock.now, continuation: continuation, timer: timer)
        return id
    }

    func finishWaiter(_ id: UInt64, _ result: Result<RaftApplyOutcome, any Error>) {
        guard let waiter = waiters.removeValue(forKey: id) else { return }
        waiter.timer.cancel()
        waiter.continuation.resume(with: result)
    }

    func expireWaiter(_ id: UInt64) {
        guard let waiter = waiters[id] else { return }
        // Voters (this one included) that answered since the caller started waiting.
        let reachable = members.filter { member in
            if member.id == local.id { return true }
            guard let answer = peers[member.id]?.lastAnswer else { return false }
            return answer >= waiter.since
        }.count
        let seconds = waiter.timeout.inSeconds
        let shown = seconds >= 1 ? String(Int(seconds.rounded())) : String((seconds * 1000).rounded() / 1000)
        let message =
            "entry \(waiter.index) not committed within \(shown) s: \(reachable) of \(members.count) managers "
            + "answer, \(quorumSize) are needed"
        finishWaiter(id, .failure(RaftError.noQuorum(message)))
    }

    /// Answers the callers waiting for `entry`: its outcome if it is the entry they appended, else
    /// notLeader (another leader's entry replaced theirs).
    func resolveWaiters(for entry: RaftEntry, outcome: RaftApplyOutcome) {
        for (id, waiter) in waiters where waiter.index == entry.index {
            finishWaiter(
                id, waiter.term == entry.term ? .success(outcome) : .failure(RaftError.notLeader(leader: leader)))
        }
    }

    func failWaiters(_ error: RaftError) {
        for id in waiters.keys { finishWaiter(id, .failure(error)) }
    }
}
