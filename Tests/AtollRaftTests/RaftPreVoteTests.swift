import Synchronization
import Testing

@testable import AtollRaft

/// Pre-vote (dissertation §9.6), one server at a time: how a server answers a pre-vote, and how a
/// server that timed out asks for them.
@Suite struct RaftPreVoteTests {
    static func preVote(
        term: UInt64, candidate: String = "c", lastLogIndex: UInt64 = 4, lastLogTerm: UInt64 = 2
    ) -> RaftVoteRequest {
        RaftVoteRequest(
            term: term, candidateID: candidate, lastLogIndex: lastLogIndex, lastLogTerm: lastLogTerm, preVote: true)
    }

    @Test func theDefaultRequestIsARealVote() {
        #expect(!RaftVoteRequest(term: 3, candidateID: "b", lastLogIndex: 4, lastLogTerm: 2).preVote)
    }

    @Test func anUpToDateCandidateIsGrantedAPreVoteWhenNoLeaderWasHeardAndNothingChanges() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        let deadline = await server.node.electionDeadline
        // As long a log of the same last term, then a longer one, then a newer last term.
        for request in [
            Self.preVote(term: 3), Self.preVote(term: 3, lastLogIndex: 7),
            Self.preVote(term: 5, lastLogIndex: 2, lastLogTerm: 3),
        ] {
            #expect(await server.node.handleVote(request) == RaftVoteResponse(term: 2, granted: true))
        }
        // In the server's own term too, as it has not voted in it.
        #expect(await server.node.handleVote(Self.preVote(term: 2)) == RaftVoteResponse(term: 2, granted: true))
        let status = await server.node.status
        #expect(status.term == 2 && status.role == .follower && status.leader == nil)
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 2, votedFor: nil))
        #expect(await server.node.electionDeadline == deadline, "a pre-vote reset the election timer")
        // The pre-vote did not use up the vote of term 3.
        let vote = await server.node.handleVote(
            RaftVoteRequest(term: 3, candidateID: "b", lastLogIndex: 4, lastLogTerm: 2))
        #expect(vote == RaftVoteResponse(term: 3, granted: true))
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 3, votedFor: "b"))
    }

    @Test func aServerThatJustHeardFromALeaderRefusesPreVotes() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        let heartbeat = await server.node.handleAppend(LoneServer.append(term: 2, prevLogIndex: 4, prevLogTerm: 2))
        #expect(heartbeat.success)
        let deadline = await server.node.electionDeadline
        let response = await server.node.handleVote(Self.preVote(term: 3, lastLogIndex: 9, lastLogTerm: 2))
        #expect(response == RaftVoteResponse(term: 2, granted: false))
        let status = await server.node.status
        #expect(status.term == 2 && status.role == .follower && status.leader?.id == "b")
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 2, votedFor: nil))
        #expect(await server.node.electionDeadline == deadline)
    }

    @Test func aCandidateWithAStaleLogIsRefusedAPreVoteAndItsTermIsNotAdopted() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        // Older last term, however long the log; same last term, shorter log.
        for request in [Self.preVote(term: 3, lastLogIndex: 9, lastLogTerm: 1), Self.preVote(term: 3, lastLogIndex: 3)]
        {
            #expect(await server.node.handleVote(request) == RaftVoteResponse(term: 2, granted: false))
        }
        #expect(await server.node.status.term == 2)
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 2, votedFor: nil))
    }

    @Test func aPreVoteForAnOlderTermOrInATermWhereTheServerVotedForAnotherIsRefused() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        #expect(await server.node.handleVote(Self.preVote(term: 1)) == RaftVoteResponse(term: 2, granted: false))
        let vote = await server.node.handleVote(
            RaftVoteRequest(term: 3, candidateID: "b", lastLogIndex: 4, lastLogTerm: 2))
        #expect(vote.granted)
        #expect(await server.node.handleVote(Self.preVote(term: 3)) == RaftVoteResponse(term: 3, granted: false))
        #expect(await server.node.handleVote(Self.preVote(term: 3, candidate: "b")).granted)
        #expect(await server.node.handleVote(Self.preVote(term: 4)) == RaftVoteResponse(term: 3, granted: true))
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 3, votedFor: "b"))
    }

    @Test func aLeaderRefusesPreVotesAndStaysLeader() async throws {
        let cluster = try TestCluster(["a"])
        let node = try await cluster.start("a")
        defer { Task { await cluster.stopAll() } }
        let before = await node.status
        #expect(before.role == .leader)
        let response = await node.handleVote(
            Self.preVote(term: before.term + 1, candidate: "b", lastLogIndex: 100, lastLogTerm: before.term + 1))
        #expect(response == RaftVoteResponse(term: before.term, granted: false))
        let after = await node.status
        #expect(after.role == .leader && after.term == before.term)
    }

    // The scripted tests below are driven by the test alone: LoneServer's timers never fire, so the
    // only election timeout is the test's call to electionTimedOut(), and no answer is dropped for
    // coming late. A starved process only makes them slower.

    @Test func aServerThatTimesOutAsksForPreVotesWithoutRaisingItsTerm() async throws {
        let peer = ScriptedPeer { _ in RaftVoteResponse(term: 2, granted: false) }
        let server = try await LoneServer(transport: peer)
        defer { Task { await server.node.stop() } }
        await server.node.electionTimedOut()
        try await eventually("b refuses a pre-vote") { peer.answers == 1 }
        #expect(
            peer.requests == [
                RaftVoteRequest(term: 3, candidateID: "a", lastLogIndex: 4, lastLogTerm: 2, preVote: true)
            ])
        // Nothing may follow the refusal; give a wrongly started election the time to show.
        try await Task.sleep(for: .milliseconds(100))
        #expect(peer.requests.count == 1, "a real election started without a majority of pre-votes")
        let status = await server.node.status
        #expect(status.term == 2 && status.role == .follower)
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 2, votedFor: nil))
    }

    @Test func aMajorityOfPreVotesStartsTheRealElection() async throws {
        let peer = ScriptedPeer { request in RaftVoteResponse(term: request.preVote ? 2 : request.term, granted: true) }
        let server = try await LoneServer(transport: peer)
        defer { Task { await server.node.stop() } }
        await server.node.electionTimedOut()
        try await eventually("a is elected") { await server.node.status.role == .leader }
        #expect(
            peer.requests == [
                RaftVoteRequest(term: 3, candidateID: "a", lastLogIndex: 4, lastLogTerm: 2, preVote: true),
                RaftVoteRequest(term: 3, candidateID: "a", lastLogIndex: 4, lastLogTerm: 2),
            ])
        #expect(await server.node.status.term == 3)
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 3, votedFor: "a"))
    }

    @Test func aPreVoteAnswerWithANewerTermIsAdopted() async throws {
        let peer = ScriptedPeer { _ in RaftVoteResponse(term: 7, granted: false) }
        let server = try await LoneServer(transport: peer)
        defer { Task { await server.node.stop() } }
        await server.node.electionTimedOut()
        try await eventually("a adopts term 7") { await server.node.status.term == 7 }
        #expect(await server.node.status.role == .follower)
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 7, votedFor: nil))
        #expect(peer.requests.map(\.preVote) == [true])
    }

    @Test func aPreVoteGrantedAfterALeaderWasHeardIsIgnored() async throws {
        let release = Mutex(false)
        let peer = ScriptedPeer { _ in
            while !release.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(5)) }
            return RaftVoteResponse(term: 2, granted: true)
        }
        let server = try await LoneServer(transport: peer)
        defer { Task { await server.node.stop() } }
        await server.node.electionTimedOut()
        try await eventually("b is asked for a pre-vote") { !peer.requests.isEmpty }
        // The leader of term 2 is heard while the pre-vote is out.
        let heartbeat = await server.node.handleAppend(LoneServer.append(term: 2, prevLogIndex: 4, prevLogTerm: 2))
        #expect(heartbeat.success)
        release.withLock { $0 = true }
        try await eventually("b grants the pre-vote") { peer.answers == 1 }
        // Nothing may follow the late grant; give a wrongly started election the time to show.
        try await Task.sleep(for: .milliseconds(100))
        #expect(peer.requests.count == 1)
        let status = await server.node.status
        #expect(status.term == 2 && status.role == .follower && status.leader?.id == "b")
    }
}

extension RaftClusterTests {
    @Suite struct PreVote {
        @Test func aPartitionedFollowerDoesNotRaiseItsTermNorDeposeTheLeaderWhenHealed() async throws {
            try await withThreeServers { cluster in
                let leaderID = try await cluster.awaitLeader()
                let leader = try cluster.node(leaderID)
                let term = await leader.status.term
                #expect(try await leader.propose("before") == .applied)
                let followerID = cluster.runningIDs.first { $0 != leaderID } ?? ""
                let follower = try cluster.node(followerID)
                #expect(await follower.status.leader?.id == leaderID)
                #expect(await follower.status.term == term)

                let rounds = await follower.preElectionRounds
                cluster.network.isolate(followerID, from: ["a", "b", "c"])
                #expect(try await leader.propose("during") == .applied)
                var terms: Set<UInt64> = []
                try await eventually("the cut-off follower times out several times") {
                    terms.insert(await follower.status.term)
                    return await follower.preElectionRounds >= rounds + 3
                }
                #expect(terms == [term], "the cut-off follower raised its term")
                #expect(await follower.status.role == .follower)

                cluster.network.heal()
                try await cluster.awaitCommands(["before", "during"], on: [followerID])
                // Long enough for a pre-election the follower started just before the heal to end.
                try await Task.sleep(for: testTiming.electionTimeout.upperBound)
                let after = await leader.status
                #expect(after.role == .leader && after.term == term, "the healed follower deposed the leader")
                #expect(try await cluster.leaders() == [leaderID])
                #expect(await follower.status.term == term)
                #expect(await follower.status.leader?.id == leaderID)
                let campaigners = cluster.network.campaigners(after: term)
                #expect(campaigners.isEmpty, "a server campaigned after the leader was elected")
                #expect(try await leader.propose("after") == .applied)
                try await cluster.awaitCommands(["before", "during", "after"], on: ["a", "b", "c"])
            }
        }

        /// What was seen on a lab: a manager restarts and times out before the leader reconnects to
        /// it, while it reaches the other follower.
        @Test func aRestartedFollowerTheLeaderHasNotReconnectedToDoesNotDeposeIt() async throws {
            try await withThreeServers { cluster in
                let leaderID = try await cluster.awaitLeader()
                let leader = try cluster.node(leaderID)
                let term = await leader.status.term
                #expect(try await leader.propose("before") == .applied)
                let restartedID = cluster.runningIDs.first { $0 != leaderID } ?? ""
                let otherID = cluster.runningIDs.first { $0 != leaderID && $0 != restartedID } ?? ""
                try await cluster.awaitCommands(["before"], on: [restartedID])

                await cluster.stop(restartedID)
                #expect(try await leader.propose("during") == .applied)
                cluster.network.isolate(restartedID, from: [leaderID])
                let restarted = try await cluster.start(restartedID)
                try await eventually("the restarted follower times out several times") {
                    await restarted.preElectionRounds >= 3
                }
                #expect(await restarted.status.term == term, "the restarted follower raised its term")
                #expect(await (try cluster.node(otherID)).status.term == term)

                cluster.network.heal()
                try await cluster.awaitCommands(["before", "during"], on: [restartedID])
                // Long enough for a pre-election the follower started just before the heal to end.
                try await Task.sleep(for: testTiming.electionTimeout.upperBound)
                let after = await leader.status
                #expect(after.role == .leader && after.term == term, "the restarted follower deposed the leader")
                #expect(try await cluster.leaders() == [leaderID])
                let campaigners = cluster.network.campaigners(after: term)
                #expect(campaigners.isEmpty, "a server campaigned after the leader was elected")
                #expect(try await leader.propose("after") == .applied)
                try await cluster.awaitCommands(["before", "during", "after"], on: ["a", "b", "c"])
            }
        }
    }
}

/// A transport to "b" whose vote answers come from a script (every request and the number of
/// answers given are recorded); appends are unreachable.
private final class ScriptedPeer: RaftTransport {
    private let answer: @Sendable (RaftVoteRequest) async -> RaftVoteResponse
    private let recorded = Mutex<(requests: [RaftVoteRequest], answers: Int)>(([], 0))

    init(_ answer: @escaping @Sendable (RaftVoteRequest) async -> RaftVoteResponse) {
        self.answer = answer
    }

    var requests: [RaftVoteRequest] { recorded.withLock { $0.requests } }
    /// How many answers the script gave (the server may not have handled the last one yet).
    var answers: Int { recorded.withLock { $0.answers } }

    func requestVote(_ request: RaftVoteRequest, to member: RaftMember) async throws -> RaftVoteResponse {
        recorded.withLock { $0.requests.append(request) }
        let response = await answer(request)
        recorded.withLock { $0.answers += 1 }
        return response
    }

    func appendEntries(_ request: RaftAppendRequest, to member: RaftMember) async throws -> RaftAppendResponse {
        throw MemoryNetwork.Unreachable()
    }
}
