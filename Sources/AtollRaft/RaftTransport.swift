/// How the server reaches the others (gRPC over mutual TLS in atolld; in memory in tests).
/// Errors mean "unreachable now"; the core retries. The core gives a call up after
/// `RaftTiming.rpcTimeout` and cancels its task.
public protocol RaftTransport: Sendable {
    func requestVote(_ request: RaftVoteRequest, to member: RaftMember) async throws -> RaftVoteResponse
    func appendEntries(_ request: RaftAppendRequest, to member: RaftMember) async throws -> RaftAppendResponse
}
