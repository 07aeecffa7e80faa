import Testing

@testable import AtollRaft

extension RaftClusterTests {
    @Suite struct Membership {
        @Test func anAddedServerWithAnEmptyLogCatchesUpFromTheFirstEntry() async throws {
            try await withThreeServers { cluster in
                let leaderID = try await cluster.awaitLeader()
                let leader = try cluster.node(leaderID)
                let commands = (1...10).map { "c\($0)" }
                for command in commands { #expect(try await leader.propose(command) == .applied) }

                try cluster.addEmptyStorage("d")
                let newcomer = try await cluster.start("d")
                try await awaitElectionTimeouts(of: newcomer, count: 2)
                let idle = await newcomer.status
                #expect(idle.role == .follower && idle.term == 0, "a server outside the configuration campaigned")
                #expect(await newcomer.preElectionRounds == 0)

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
        }

        @Test func aRemovedServerThatMissedItsRemovalDoesNotDisruptTheCluster() async throws {
            try await withThreeServers { cluster in
                let leaderID = try await cluster.awaitLeader()
                let leader = try cluster.node(leaderID)
                let others = cluster.runningIDs.filter { $0 != leaderID }
                let (removed, kept) = (others[0], others[1])
                #expect(try await leader.propose("one") == .applied)

                cluster.network.isolate(removed, from: ["a", "b", "c"])
                try await leader.removeMember(id: removed)
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
                let electionTerm = await removedNode.status.term
                let requests = { @Sendable in
                    cluster.network.voteCalls.filter {
                        $0.from == removed && !$0.request.preVote && $0.request.term == electionTerm
                    }
                }
                try await eventually("the leader and the kept server answer the removed server") {
                    Set(requests().filter { $0.response != nil }.map(\.to)) == [leaderID, kept]
                }
                #expect(requests().allSatisfy { $0.response?.granted != true })
                // Long enough for a pre-election the removed server started just before the heal to end.
                try await Task.sleep(for: testTiming.electionTimeout.upperBound)
                let after = await leader.status
                #expect(after.role == .leader)
                #expect(after.term == term, "the removed server's vote requests deposed the leader")
                #expect(await (try cluster.node(kept)).status.term == term)
                #expect(await removedNode.status.role != .leader)
                #expect(try await leader.propose("two") == .applied)
                try await cluster.awaitCommands(["one", "two"], on: [leaderID, kept])
            }
        }

        @Test func aRemovedServerThatLearnsOfItsRemovalStopsCampaigning() async throws {
            try await withThreeServers { cluster in
                let leaderID = try await cluster.awaitLeader()
                let leader = try cluster.node(leaderID)
                let removed = cluster.runningIDs.first { $0 != leaderID } ?? ""
                try await leader.removeMember(id: removed)
                let removedNode = try cluster.node(removed)
                try await eventually("the removed server sees its removal") {
                    await !removedNode.status.members.contains { $0.id == removed }
                }
                let term = await removedNode.status.term
                let rounds = await removedNode.preElectionRounds
                try await awaitElectionTimeouts(of: removedNode, count: 2)
                #expect(await removedNode.status.term == term)
                #expect(await removedNode.status.role == .follower)
                #expect(await removedNode.preElectionRounds == rounds)
            }
        }

        @Test func aLeaderThatRemovesItselfStepsDownAndTheOthersElectANewOne() async throws {
            try await withThreeServers { cluster in
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
        }

        @Test func aSecondChangeIsRefusedWhileTheFirstIsUncommitted() async throws {
            try await withThreeServers { cluster in
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
