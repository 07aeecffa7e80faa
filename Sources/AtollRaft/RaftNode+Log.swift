extension RaftNode {
    var lastIndex: UInt64 { UInt64(log.count) }
    var lastTerm: UInt64 { log.last?.term ?? 0 }

    /// Whether this server is in the latest configuration (and so may vote and campaign).
    var isVoter: Bool { members.contains { $0.id == local.id } }

    /// Votes or matches needed out of the latest configuration.
    var quorumSize: Int { members.count / 2 + 1 }

    /// The term of the entry at `index`; 0 for index 0; nil past the end of the log.
    func term(at index: UInt64) -> UInt64? {
        if index == 0 { return 0 }
        return index <= lastIndex ? log[Int(index - 1)].term : nil
    }

    func entry(at index: UInt64) -> RaftEntry? {
        index >= 1 && index <= lastIndex ? log[Int(index - 1)] : nil
    }

    /// Up to `maxCount` entries from `index` on.
    func entries(from index: UInt64, maxCount: Int) -> [RaftEntry] {
        guard index >= 1, index <= lastIndex else { return [] }
        let start = Int(index - 1)
        return Array(log[start..<min(log.count, start + maxCount)])
    }

    /// Stores `entries` durably, replacing every entry from the first one's index on, then mirrors
    /// them in memory.
    func storeEntries(_ entries: [RaftEntry]) throws {
        guard let first = entries.first, first.index >= 1, first.index <= lastIndex + 1 else { return }
        do {
            try storage.append(entries)
        } catch {
            throw RaftError.storage(
                "cannot append entries \(first.index)...\(first.index + UInt64(entries.count) - 1): \(error)")
        }
        let keep = Int(first.index - 1)
        let truncated = keep < log.count
        log.removeSubrange(keep...)
        log.append(contentsOf: entries)
        if truncated || entries.contains(where: { $0.kind == .configuration }) {
            reloadConfiguration()
        }
    }

    /// Finds the latest configuration in the log (committed or not) and the one before it.
    func reloadConfiguration() {
        var latest: (index: UInt64, members: [RaftMember])?
        var previous: [RaftMember] = []
        for entry in log.reversed() where entry.kind == .configuration {
            let decoded: [RaftMember]
            do {
                decoded = try entry.members()
            } catch {
                logger.error("skipping an unreadable configuration entry", metadata: ["error": "\(error)"])
                continue
            }
            if latest == nil {
                latest = (entry.index, decoded)
            } else {
                previous = decoded
                break
            }
        }
        members = latest?.members ?? []
        configurationIndex = latest?.index ?? 0
        previousMembers = previous
    }

    /// Applies the committed entries not applied yet, in order, and answers whoever waits for them.
    /// A storage error stops here; the ticker retries.
    func applyCommitted() {
        while appliedIndex < commitIndex, let next = entry(at: appliedIndex + 1) {
            let outcome: RaftApplyOutcome
            do {
                outcome = try storage.apply(next)
            } catch {
                logger.error(
                    "cannot apply a committed entry; will retry",
                    metadata: ["index": "\(next.index)", "error": "\(error)"])
                return
            }
            appliedIndex = next.index
            resolveWaiters(for: next, outcome: outcome)
        }
    }

    /// Persists the hard state, then adopts it. False (and logged) when storage fails.
    func persist(_ state: RaftHardState) -> Bool {
        guard state != hardState else { return true }
        do {
            try storage.save(state)
        } catch {
            logger.error("cannot save the hard state", metadata: ["term": "\(state.term)", "error": "\(error)"])
            return false
        }
        hardState = state
        return true
    }
}
