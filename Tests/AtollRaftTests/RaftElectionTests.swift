import Synchronization
import Testing

@testable import AtollRaft

extension RaftClusterTests {
    @Suite struct Elections {
        @Test func aSingleMemberElectsItselfAtOnceAndCommits() async throws {
            let cluster = try TestCluster(["a"])
            let node = try await cluster.start("a")
            defer { Task { await cluster.stopAll() } }
            let status = await node.status
            #expect(status.role == .leader)
            #expect(status.term == 1)
            #expect(status.leader == testMember("a"))
            #expect(try await node.propose("x") == .applied)
            #expect(try cluster.storage("a").commands == ["x"])
            let after = await node.status
            #expect(after.commitIndex == 3 && after.appliedIndex == 3)  // configuration, noop, x
            var changes = await node.statusChanges().makeAsyncIterator()
            #expect(await changes.next() == after)
        }

        @Test func threeMembersElectExactlyOneLeaderPerTerm() async throws {
            try await withStallRetries {
                let cluster = try TestCluster(["a", "b", "c"])
                // Record every status each server reports, to check election safety over time.
                let seen = StatusLog()
                try await cluster.startAll()
                var watchers: [Task<Void, Never>] = []
                for id in cluster.runningIDs {
                    let changes = await (try cluster.node(id)).statusChanges()
                    watchers.append(
                        Task {
                            for await status in changes { seen.record(id, status) }
                        })
                }
                let leader = try await cluster.awaitLeader()
                let term = await (try cluster.node(leader)).status.term
                for id in cluster.runningIDs where id != leader {
                    let status = await (try cluster.node(id)).status
                    #expect(status.role == .follower && status.term == term && status.leader?.id == leader)
                }
                // The heartbeats keep the followers from campaigning for longer than any election
                // timeout.
                try await Task.sleep(for: testTiming.electionTimeout.upperBound * 3 / 2)
                #expect(try await cluster.leaders() == [leader])
                let leaderStatus = await (try cluster.node(leader)).status
                #expect(leaderStatus.term == term)
                #expect(Set(leaderStatus.lastContact.keys) == Set(["a", "b", "c"]).subtracting([leader]))
                let campaigners = cluster.network.campaigners(after: term)
                #expect(campaigners.isEmpty, "a server campaigned after the leader was elected")
                await cluster.stopAll()
                for watcher in watchers { await watcher.value }  // streams end on stop
                var leaderOfTerm: [UInt64: String] = [:]
                for (id, status) in seen.entries where status.role == .leader {
                    #expect(
                        leaderOfTerm[status.term, default: id] == id,
                        "\(safetyViolation) two leaders in term \(status.term)")
                    leaderOfTerm[status.term] = id
                }
                #expect(leaderOfTerm[term] == leader)
            }
        }

        @Test func stoppingTheLeaderElectsANewOneAndCommittedEntriesSurvive() async throws {
            try await withThreeServers { cluster in
                let old = try await cluster.awaitLeader()
                let oldTerm = await (try cluster.node(old)).status.term
                #expect(try await cluster.node(old).propose("one") == .applied)
                #expect(try await cluster.node(old).propose("two") == .applied)
                await cluster.stop(old)

                let rest = cluster.runningIDs
                let new = try await cluster.awaitLeader(among: rest)
                let node = try cluster.node(new)
                #expect(await node.status.term > oldTerm)
                try await node.barrier()
                #expect(try cluster.storage(new).commands == ["one", "two"])
                #expect(try await node.propose("three") == .applied)
                try await cluster.awaitCommands(["one", "two", "three"], on: rest)
            }
        }

        @Test func aPartitionedLeaderCannotCommitStepsDownAndLosesItsUncommittedEntries() async throws {
            try await withThreeServers { cluster in
                let old = try await cluster.awaitLeader()
                let others = cluster.runningIDs.filter { $0 != old }
                let oldNode = try cluster.node(old)
                #expect(try await oldNode.propose("before") == .applied)

                try await eventually("both followers answered the leader") {
                    await Set(oldNode.status.lastContact.keys) == Set(others)
                }
                cluster.network.isolate(old, from: others)
                // Answers to appends sent before the cut may still be on their way; once handled, they
                // would count as answers to the proposal below.
                try await eventually("the cut-off leader hears nothing more") {
                    let contact = await oldNode.status.lastContact
                    return others.allSatisfy { (contact[$0] ?? 0) >= (testTiming.heartbeatInterval * 2).inSeconds }
                }
                let error = await #expect(throws: RaftError.self) {
                    try await oldNode.propose("lost", timeout: .milliseconds(100))
                }
                guard case .noQuorum(let message)? = error else {
                    Issue.record("expected noQuorum, got \(String(describing: error))")
                    return
                }
                #expect(message.contains("1 of 3 managers answer"))
                try await eventually("the old leader steps down") {
                    let status = await oldNode.status
                    return status.role != .leader && status.leader == nil
                }
                let lostIndex = try cluster.storage(old).snapshot.entries.count
                #expect(try cluster.storage(old).snapshot.entries.last?.data == Array("lost".utf8))

                let new = try await cluster.awaitLeader(among: others)
                #expect(try await cluster.node(new).propose("after") == .applied)

                cluster.network.heal()
                try await eventually("the old leader's log is the new leader's") {
                    let leaders = try await cluster.leaders()
                    guard leaders.count == 1, let current = leaders.first, current != old else { return false }
                    return try cluster.storage(old).snapshot.entries == cluster.storage(current).snapshot.entries
                }
                let entries = try cluster.storage(old).snapshot.entries
                #expect(
                    !entries.contains { $0.data == Array("lost".utf8) },
                    "\(safetyViolation) an entry no majority stored survived")
                #expect(entries.count >= lostIndex)
                try await cluster.awaitCommands(["before", "after"], on: cluster.runningIDs)
            }
        }
    }
}

/// Every status the servers of a test reported, in arrival order.
private final class StatusLog: Sendable {
    private let seen = Mutex<[(id: String, status: RaftStatus)]>([])

    func record(_ id: String, _ status: RaftStatus) {
        seen.withLock { $0.append((id, status)) }
    }

    var entries: [(id: String, status: RaftStatus)] { seen.withLock { $0 } }
}
