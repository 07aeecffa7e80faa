@testable import AtollRaft

/// One started server "a" in a configuration {a, b} that reaches nobody. Its log: 1 (term 1,
/// configuration), 2 "two" (term 1), 3 "three" (term 2), 4 "four" (term 2); hard state term 2, no
/// vote. Another transport can be given, to script what "b" answers.
///
/// Its timers never fire during a test, however starved the process: the election timeout (and so
/// a leader's quorum check) and the RPC timeout are hours, so a test that needs an election timeout
/// calls `electionTimedOut()` itself, and a scripted answer is never dropped for coming late. Only
/// the ticker runs (it retries a failed apply).
struct LoneServer {
    let node: RaftNode
    let storage: MemoryStorage

    static let timing = RaftTiming(
        heartbeatInterval: .milliseconds(50), electionTimeout: .seconds(3600)...(.seconds(7200)),
        rpcTimeout: .seconds(3600))

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
