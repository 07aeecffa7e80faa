import Testing

@testable import AtollRaft

extension RaftClusterTests {
    @Suite struct Replication {
        @Test func proposalsAreAppliedOnEveryServerInTheSameOrder() async throws {
            try await withThreeServers { cluster in
                let leader = try cluster.node(try await cluster.awaitLeader())
                let outcomes = try await withThrowingTaskGroup(of: RaftApplyOutcome.self) { group in
                    for number in 0..<20 {
                        group.addTask { try await leader.propose("c\(number)") }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(outcomes == Array(repeating: .applied, count: 20))
                let order = try cluster.storage(await leader.status.leader?.id ?? "").commands
                #expect(Set(order) == Set((0..<20).map { "c\($0)" }))
                try await cluster.awaitCommands(order, on: ["a", "b", "c"])
                for id in ["a", "b", "c"] {
                    let calls = try cluster.storage(id).snapshot.applyCalls
                    #expect(
                        calls == Array(1...UInt64(calls.count)),
                        "\(safetyViolation) \(id) applied out of order or twice")
                }
            }
        }

        @Test func aRefusedCommandComesBackToTheProposerAndIsRefusedEverywhere() async throws {
            try await withThreeServers { cluster in
                let leader = try cluster.node(try await cluster.awaitLeader())
                let outcome = try await leader.propose("refuse")
                #expect(outcome == .refused("the test state machine refuses \"refuse\""))
                #expect(try await leader.propose("fine") == .applied)
                try await cluster.awaitCommands(["fine"], on: ["a", "b", "c"])
                for id in ["a", "b", "c"] { #expect(try cluster.storage(id).snapshot.refused == ["refuse"]) }
            }
        }

        @Test func proposingOnAFollowerThrowsNotLeaderWithTheLeader() async throws {
            try await withThreeServers { cluster in
                let leader = try await cluster.awaitLeader()
                let follower = try cluster.node(cluster.runningIDs.first { $0 != leader } ?? "")
                try await eventually("the follower knows the leader") { await follower.status.leader?.id == leader }
                let error = await #expect(throws: RaftError.self) { try await follower.propose("x") }
                #expect(error == .notLeader(leader: testMember(leader)))
                let barrierError = await #expect(throws: RaftError.self) { try await follower.barrier() }
                #expect(barrierError == .notLeader(leader: testMember(leader)))
            }
        }

        @Test func aBarrierWaitsForTheLeadersFirstEntry() async throws {
            try await withThreeServers { cluster in
                let node = try cluster.node(try await cluster.awaitLeader())
                try await node.barrier()
                let status = await node.status
                let start = await node.termStartIndex
                let noop = await node.entry(at: start)
                #expect(noop?.kind == .noop)
                #expect(noop?.term == status.term)
                #expect(status.appliedIndex >= start)
            }
        }

        @Test func aRestartedServerKeepsItsStateAndAppliesOnlyNewEntries() async throws {
            try await withThreeServers { cluster in
                let leaderID = try await cluster.awaitLeader()
                let leader = try cluster.node(leaderID)
                #expect(try await leader.propose("one") == .applied)
                #expect(try await leader.propose("two") == .applied)
                let restarted = cluster.runningIDs.first { $0 != leaderID } ?? ""
                try await cluster.awaitCommands(["one", "two"], on: [restarted])

                await cluster.stop(restarted)
                #expect(try await leader.propose("three") == .applied)
                let saved = try cluster.storage(restarted).snapshot
                let node = try await cluster.start(restarted)
                let status = await node.status
                #expect(status.term >= saved.hardState.term)
                #expect(status.lastIndex >= UInt64(saved.entries.count))
                #expect(status.appliedIndex >= saved.appliedIndex)

                try await cluster.awaitCommands(["one", "two", "three"], on: [restarted])
                let calls = try cluster.storage(restarted).snapshot.applyCalls
                #expect(
                    calls == Array(1...UInt64(calls.count)),
                    "\(safetyViolation) an entry was applied twice or out of order")
            }
        }

        @Test func aRestartedSingleServerKeepsItsTermAndLog() async throws {
            let cluster = try TestCluster(["a"])
            let first = try await cluster.start("a")
            #expect(try await first.propose("one") == .applied)
            #expect(try await first.propose("two") == .applied)
            let before = await first.status
            await cluster.stop("a")
            let saved = try cluster.storage("a").snapshot
            #expect(saved.hardState == RaftHardState(term: before.term, votedFor: "a"))

            let second = try await cluster.start("a")
            defer { Task { await cluster.stopAll() } }
            let after = await second.status
            #expect(after.role == .leader)
            #expect(after.term == before.term + 1)  // it elected itself again, in the next term
            #expect(after.lastIndex == before.lastIndex + 1)  // its log plus the new noop
            #expect(try await second.propose("three") == .applied)
            #expect(try cluster.storage("a").commands == ["one", "two", "three"])
            #expect(try cluster.storage("a").snapshot.applyCalls == [1, 2, 3, 4, 5, 6])
        }

        @Test func stoppingFailsPendingProposalsAndLaterCalls() async throws {
            try await withStallRetries {
                let cluster = try TestCluster(["a", "b", "c"])
                try await cluster.startAll()
                let leaderID = try await cluster.awaitLeader()
                let leader = try cluster.node(leaderID)
                cluster.network.isolate(leaderID, from: ["a", "b", "c"])
                let pending = Task { try await leader.propose("never", timeout: .seconds(60)) }
                try await eventually("the proposal waits") { await leader.waiters.count == 1 }
                await cluster.stopAll()
                await #expect(throws: RaftError.stopped) { try await pending.value }
                await #expect(throws: RaftError.stopped) { try await leader.propose("late") }
                await leader.stop()  // idempotent
            }
        }
    }
}
