import Testing

@testable import AtollRaft

extension RaftClusterTests {
    @Suite struct Membership {
        @Test func anAddedServerWithAnEmptyLogCatchesUpFromTheFirstEntry() async throws {
            let cluster = try TestCluster(["a", "b", "c"])
            try await cluster.startAll()
            defer { Task { await cluster.stopAll() } }
            let leaderID = try await cluster.awaitLeader()
            let leader = try cluster.node(leaderID)
            let commands = (1...10).map { "c\($0)" }
            for command in commands { #expect(try await leader.propose(command) == .applied) }

            try cluster.addEmptyStorage("d")
            let newcomer = try await cluster.start("d")
            try await Task.sleep(for: .milliseconds(400))  // two election timeouts at least
            let idle = await newcomer.status
            #expect(idle.role == .follower && idle.term == 0, "a server outside the configuration campaigned")

            try await leader.addMember(testMember("d"))
            #expect(await leader.status.members.map(\.id) == ["a", "b", "c", "d"])
            try await cluster.awaitCommands(commands, on: ["d"])
            #expect(try cluster.storage("d").snapshot.entries.first?.index == 1)
            #expect(try await leader.propose("c11") == .applied)
            try await cluster.awaitCommands(commands + ["c11"], on: ["a", "b", "c", "d"])
            let status = await newcomer.status
            #expect(status.members.map(\.id) == ["a", "b", "c", "d"])
            #expect(status.leader?.id == leaderID)
            #expect(status.term == (await leader.status.term))
        }

        @Test func aRemovedServerThatMissedItsRemovalDoesNotDisruptTheCluster() async throws {
            let cluster = try TestCluster(["a", "b", "c"])
            try await cluster.startAll()
            defer { Task { await cluster.stopAll() } }
            let leaderID = try await cluster.awaitLeader()
            let leader = try cluster.node(leaderID)
            let others = cluster.runningIDs.filter { $0 != leaderID }
            let (removed, kept) = (others[0], others[1])
            #expect(try await leader.propose("one") == .applied)

            cluster.network.isolate(removed, from: ["a", "b", "c"])
            try await leader.removeMember(id: removed, timeout: .seconds(2))
            let term = await leader.status.term
            #expect(await leader.status.members.map(\.id) == [leaderID, kept].sorted())
            // The removed server never heard of its removal, so it keeps timing out; nobody answers
            // its pre-votes, so it does not raise its term.
            let removedNode = try cluster.node(removed)
            let rounds = await removedNode.preElectionRounds
            try await eventually("the removed server runs pre-elections") {
                await removedNode.preElectionRounds >= rounds + 2
            }
            #expect(await removedNode.status.term <= term)
            // Force it into real elections, with ever newer terms (as a server without pre-vote
            // would): the §4.2.3 guard must still protect the cluster from its vote requests.
            await removedNode.startElection()
            await removedNode.startElection()
            #expect(await removedNode.status.term > term)

            cluster.network.heal()
            await removedNode.startElection()
            try await Task.sleep(for: .milliseconds(600))
            let after = await leader.status
            #expect(after.role == .leader)
            #expect(after.term == term, "the removed server's vote requests deposed the leader")
            #expect(await (try cluster.node(kept)).status.term == term)
            #expect(await removedNode.status.role != .leader)
            #expect(try await leader.propose("two") == .applied)
            try await cluster.awaitCommands(["one", "two"], on: [leaderID, kept])
        }

        @Test func aRemovedServerThatLearnsOfItsRemovalStopsCampaigning() async throws {
            let cluster = try TestCluster(["a", "b", "c"])
            try await cluster.startAll()
            defer { Task { await cluster.stopAll() } }
            let leaderID = try await cluster.awaitLeader()
            let leader = try cluster.node(leaderID)
            let removed = cluster.runningIDs.first { $0 != leaderID } ?? ""
            try await leader.removeMember(id: removed)
            let removedNode = try cluster.node(removed)
            try await eventually("the removed server sees its removal") {
                await !removedNode.status.members.contains { $0.id == removed }
            }
            let term = await removedNode.status.term
            try await Task.sleep(for: .milliseconds(500))
            #expect(await removedNode.status.term == term)
            #expect(await removedNode.status.role == .follower)
        }

        @Test func aLeaderThatRemovesItselfStepsDownAndTheOthersElectANewOne() async throws {
            let cluster = try TestCluster(["a", "b", "c"])
            try await cluster.startAll()
            defer { Task { await cluster.stopAll() } }
            let leaderID = try await cluster.awaitLeader()
            let leader = try cluster.node(leaderID)
            #expect(try await leader.propose("one") == .applied)
            try await leader.removeMember(id: leaderID)
            let status = await leader.status
            #expect(status.role == .follower)
            #expect(!status.members.contains { $0.id == leaderID })
            let rest = cluster.runningIDs.filter { $0 != leaderID }
            let new = try await cluster.awaitLeader(among: rest)
            #expect(try await cluster.node(new).propose("two") == .applied)
            try await cluster.awaitCommands(["one", "two"], on: rest)
            #expect(await leader.status.role == .follower)
        }

        @Test func aSecondChangeIsRefusedWhileTheFirstIsUncommitted() async throws {
            let cluster = try TestCluster(["a", "b", "c"])
            try await cluster.startAll()
            defer { Task { await cluster.stopAll() } }
            let leaderID = try await cluster.awaitLeader()
            let leader = try cluster.node(leaderID)
            try await leader.barrier()
            cluster.network.isolate(leaderID, from: ["a", "b", "c"])
            try await leader.addMember(testMember("d"))  // appended, not committed: nobody answers
            await #expect(throws: RaftError.configurationChangeInProgress) {
                try await leader.addMember(testMember("e"))
            }
            await #expect(throws: RaftError.configurationChangeInProgress) {
                try await leader.removeMember(id: "d", timeout: .milliseconds(100))
            }
        }

        @Test func invalidChangesAreRefused() async throws {
            let cluster = try TestCluster(["a"])
            let leader = try await cluster.start("a")
            defer { Task { await cluster.stopAll() } }
            let duplicate = await #expect(throws: RaftError.self) { try await leader.addMember(testMember("a")) }
            guard case .invalidConfiguration? = duplicate else {
                Issue.record("expected invalidConfiguration, got \(String(describing: duplicate))")
                return
            }
            let last = await #expect(throws: RaftError.self) { try await leader.removeMember(id: "a") }
            #expect(last == .invalidConfiguration("cannot remove the last member"))
            #expect(await leader.status.members == [testMember("a")])
        }
    }
}
