import Testing

@testable import AtollRaft

@Suite struct RaftVoteTests {
    @Test func aCandidateWithAStaleLogIsRefusedButItsTermIsAdopted() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        // Older last term, however long the log.
        let older = await server.node.handleVote(
            RaftVoteRequest(term: 3, candidateID: "b", lastLogIndex: 9, lastLogTerm: 1))
        #expect(older == RaftVoteResponse(term: 3, granted: false))
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 3, votedFor: nil))
        // Same last term, shorter log.
        let shorter = await server.node.handleVote(
            RaftVoteRequest(term: 3, candidateID: "b", lastLogIndex: 3, lastLogTerm: 2))
        #expect(!shorter.granted)
        // Same last term, as long: up to date.
        let even = await server.node.handleVote(
            RaftVoteRequest(term: 3, candidateID: "b", lastLogIndex: 4, lastLogTerm: 2))
        #expect(even == RaftVoteResponse(term: 3, granted: true))
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 3, votedFor: "b"))
    }

    @Test func aServerVotesOncePerTerm() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        let request = { (candidate: String, term: UInt64) in
            RaftVoteRequest(term: term, candidateID: candidate, lastLogIndex: 4, lastLogTerm: 2)
        }
        #expect(await server.node.handleVote(request("b", 3)).granted)
        #expect(await !server.node.handleVote(request("c", 3)).granted)
        #expect(await server.node.handleVote(request("b", 3)).granted)  // a repeated request is answered the same
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 3, votedFor: "b"))
        #expect(await server.node.handleVote(request("c", 4)).granted)
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 4, votedFor: "c"))
    }

    @Test func aRequestForAnOlderTermIsRefused() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        let response = await server.node.handleVote(
            RaftVoteRequest(term: 1, candidateID: "b", lastLogIndex: 10, lastLogTerm: 2))
        #expect(response == RaftVoteResponse(term: 2, granted: false))
        #expect(server.storage.snapshot.hardState.votedFor == nil)
    }

    @Test func aServerThatJustHeardFromALeaderIgnoresVoteRequests() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        let heartbeat = await server.node.handleAppend(LoneServer.append(term: 2, prevLogIndex: 4, prevLogTerm: 2))
        #expect(heartbeat.success)
        let response = await server.node.handleVote(
            RaftVoteRequest(term: 9, candidateID: "c", lastLogIndex: 4, lastLogTerm: 2))
        #expect(response == RaftVoteResponse(term: 2, granted: false))
        #expect(await server.node.status.term == 2)
        #expect(server.storage.snapshot.hardState == RaftHardState(term: 2, votedFor: nil))
    }
}
