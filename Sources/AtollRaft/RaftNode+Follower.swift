extension RaftNode {
    /// AppendEntries (§5.3): checks the previous entry, drops a conflicting suffix, stores what is
    /// new, and advances the commit index. Answers with a conflict index on a mismatch (the
    /// accelerated backtracking of §5.3).
    public func handleAppend(_ request: RaftAppendRequest) -> RaftAppendResponse {
        func failure(conflictIndex: UInt64) -> RaftAppendResponse {
            RaftAppendResponse(term: hardState.term, success: false, matchIndex: 0, conflictIndex: conflictIndex)
        }
        guard lifecycle == .running, request.term >= hardState.term else { return failure(conflictIndex: 0) }
        guard adoptTerm(request.term) else { return failure(conflictIndex: 0) }
        let sender = RaftMember(id: request.leaderID, address: request.leaderAddress)
        if role != .follower || leader != sender {
            becomeFollower(leader: sender)
        }
        lastLeaderContact = clock.now
        resetElectionTimer()

        guard let previousTerm = term(at: request.prevLogIndex) else {
            return failure(conflictIndex: lastIndex + 1)
        }
        guard previousTerm == request.prevLogTerm else {
            var first = request.prevLogIndex
            while first > 1, term(at: first - 1) == previousTerm { first -= 1 }
            return failure(conflictIndex: first)
        }
        for (offset, entry) in request.entries.enumerated()
        where entry.index != request.prevLogIndex + UInt64(offset) + 1 {
            logger.error("ignoring an append whose entries are not contiguous", metadata: ["leader": "\(sender.id)"])
            return failure(conflictIndex: request.prevLogIndex + 1)
        }

        // Skip the entries already present (a late or repeated request must not truncate the log).
        var firstNew = request.entries.count
        for (offset, entry) in request.entries.enumerated() where term(at: entry.index) != entry.term {
            firstNew = offset
            break
        }
        if firstNew < request.entries.count {
            let fresh = Array(request.entries[firstNew...])
            guard let first = fresh.first, first.index > commitIndex else {
                logger.critical("a leader tried to overwrite a committed entry", metadata: ["leader": "\(sender.id)"])
                return failure(conflictIndex: commitIndex + 1)
            }
            do {
                try storeEntries(fresh)
            } catch {
                logger.error("cannot store replicated entries", metadata: ["error": "\(error)"])
                return failure(conflictIndex: first.index)
            }
            publishStatus()
        }

        let matchIndex = request.prevLogIndex + UInt64(request.entries.count)
        if request.leaderCommit > commitIndex {
            commitIndex = max(commitIndex, min(request.leaderCommit, matchIndex))
            applyCommitted()
        }
        return RaftAppendResponse(term: hardState.term, success: true, matchIndex: matchIndex, conflictIndex: 0)
    }
}
