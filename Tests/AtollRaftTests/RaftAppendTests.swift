import Testing

@testable import AtollRaft

@Suite struct RaftAppendTests {
    @Test func aConflictingSuffixIsReplacedByTheLeadersEntries() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        let response = await server.node.handleAppend(
            LoneServer.append(
                term: 3, prevLogIndex: 2, prevLogTerm: 1, entries: [LoneServer.command(3, term: 3, "new three")]))
        #expect(response == RaftAppendResponse(term: 3, success: true, matchIndex: 3, conflictIndex: 0))
        let entries = server.storage.snapshot.entries
        #expect(entries.map(\.term) == [1, 1, 3])  // entry 4 of term 2 is gone with 3
        #expect(entries.last == LoneServer.command(3, term: 3, "new three"))
        let status = await server.node.status
        #expect(status.lastIndex == 3)
        #expect(status.leader == testMember("b"))
        #expect(status.term == 3)
    }

    @Test func aShortLogAsksTheLeaderToRetryAfterItsEnd() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        let response = await server.node.handleAppend(LoneServer.append(term: 2, prevLogIndex: 10, prevLogTerm: 2))
        #expect(response == RaftAppendResponse(term: 2, success: false, matchIndex: 0, conflictIndex: 5))
    }

    @Test func aConflictingTermAsksTheLeaderToRetryFromThatTermsFirstEntry() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        let response = await server.node.handleAppend(LoneServer.append(term: 3, prevLogIndex: 4, prevLogTerm: 3))
        #expect(response == RaftAppendResponse(term: 3, success: false, matchIndex: 0, conflictIndex: 3))
        #expect(server.storage.snapshot.entries.count == 4)  // nothing is deleted on a mismatch
    }

    @Test func anAppendFromAnOlderTermIsRefused() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        let response = await server.node.handleAppend(
            LoneServer.append(term: 1, prevLogIndex: 1, prevLogTerm: 1, entries: [LoneServer.command(2, term: 1, "x")]))
        #expect(!response.success)
        #expect(response.term == 2)
        #expect(server.storage.snapshot.entries.count == 4)
        #expect(await server.node.status.leader == nil)
    }

    @Test func aRepeatedOrLateAppendDoesNotTruncateTheLog() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        let response = await server.node.handleAppend(
            LoneServer.append(
                term: 2, prevLogIndex: 1, prevLogTerm: 1, entries: [LoneServer.command(2, term: 1, "two")]))
        #expect(response == RaftAppendResponse(term: 2, success: true, matchIndex: 2, conflictIndex: 0))
        #expect(server.storage.snapshot.entries.count == 4)
    }

    @Test func theLeadersCommitIndexIsAppliedUpToTheMatchedEntries() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        _ = await server.node.handleAppend(LoneServer.append(term: 2, prevLogIndex: 3, prevLogTerm: 2, leaderCommit: 3))
        #expect(server.storage.commands == ["two", "three"])
        #expect(await server.node.status.commitIndex == 3)
        // Never past what this request matched, whatever the leader's commit index.
        _ = await server.node.handleAppend(
            LoneServer.append(term: 2, prevLogIndex: 4, prevLogTerm: 2, leaderCommit: 10))
        #expect(server.storage.commands == ["two", "three", "four"])
        let status = await server.node.status
        #expect(status.commitIndex == 4 && status.appliedIndex == 4)
        #expect(server.storage.snapshot.applyCalls == [1, 2, 3, 4])
    }

    @Test func aFailedApplyIsRetriedWithoutSkipping() async throws {
        let server = try await LoneServer()
        defer { Task { await server.node.stop() } }
        server.storage.state.withLock { $0.failApply = true }
        _ = await server.node.handleAppend(LoneServer.append(term: 2, prevLogIndex: 4, prevLogTerm: 2, leaderCommit: 4))
        #expect(await server.node.status.appliedIndex == 0)
        server.storage.state.withLock { $0.failApply = false }
        try await eventually("the ticker retries the apply") { await server.node.status.appliedIndex == 4 }
        #expect(server.storage.snapshot.applyCalls == [1, 2, 3, 4])
    }
}
