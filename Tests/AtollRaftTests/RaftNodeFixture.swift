@testable import AtollRaft

/// One started server "a" in a configuration {a, b} that reaches nobody, with a long election
/// timeout so that it does not campaign during a unit test. Its log: 1 (term 1, configuration),
/// 2 "two" (term 1), 3 "three" (term 2), 4 "four" (term 2); hard state term 2, no vote. Another
/// transport can be given, to script what "b" answers.
struct LoneServer {
    let node: RaftNode
    let storage: MemoryStorage

    static let timing = RaftTiming(
        heartbeatInterval: .milliseconds(20), electionTimeout: .seconds(30)...(.seconds(60)),
        rpcTimeout: .milliseconds(100))

    init(transport: any RaftTransport = UnreachableTransport()) async throws {
        storage = try MemoryStorage()
        let configuration = try RaftEntry.configuration(index: 1, term: 1, members: [testMember("a"), testMember("b")])
        storage.state.withLock {
            $0.hardState = RaftHardState(term: 2, votedFor: nil)
            $0.entries = [
                configuration,
                RaftEntry(index: 2, term: 1, kind: .command, data: Array("two".utf8)),
                RaftEntry(index: 3, term: 2, kind: .command, data: Array("three".utf8)),
                RaftEntry(index: 4, term: 2, kind: .command, data: Array("four".utf8)),
            ]
        }
        node = RaftNode(
            self: testMember("a"), storage: storage, transport: transport, timing: Self.timing,
            logger: quietLogger)
        try await node.start()
    }

    /// An AppendEntries from "b".
    static func append(
        term: UInt64, prevLogIndex: UInt64, prevLogTerm: UInt64, entries: [RaftEntry] = [], leaderCommit: UInt64 = 0
    ) -> RaftAppendRequest {
        RaftAppendRequest(
            term: term, leaderID: "b", leaderAddress: testMember("b").address, prevLogIndex: prevLogIndex,
            prevLogTerm: prevLogTerm, entries: entries, leaderCommit: leaderCommit)
    }

    static func command(_ index: UInt64, term: UInt64, _ text: String) -> RaftEntry {
        RaftEntry(index: index, term: term, kind: .command, data: Array(text.utf8))
    }
}
