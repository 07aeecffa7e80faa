import Synchronization

@testable import AtollRaft

/// Routes RPCs between RaftNodes in memory. A link can be cut (both directions); a call over a
/// cut link, or to a server that is not registered (stopped), throws. Every vote request is logged.
final class MemoryNetwork: Sendable {
    struct Link: Hashable {
        let from: String
        let to: String
    }

    struct Unreachable: Error {}

    /// A vote request (or pre-vote) a server sent, and the answer it got if the call got through.
    struct VoteCall: Sendable {
        let from: String
        let to: String
        let request: RaftVoteRequest
        var response: RaftVoteResponse?
    }

    private let nodes = Mutex<[String: RaftNode]>([:])
    private let cut = Mutex<Set<Link>>([])
    private let votes = Mutex<[VoteCall]>([])

    /// Every vote request sent so far, in the order they were sent.
    var voteCalls: [VoteCall] { votes.withLock { $0 } }

    /// The servers that asked for real votes (not pre-votes) in a term after `term`, once per request.
    func campaigners(after term: UInt64) -> [String] {
        voteCalls.filter { !$0.request.preVote && $0.request.term > term }.map(\.from)
    }

    /// Logs a vote request; returns its position for `answered`.
    func sent(_ request: RaftVoteRequest, from: String, to: String) -> Int {
        votes.withLock { calls in
            calls.append(VoteCall(from: from, to: to, request: request, response: nil))
            return calls.count - 1
        }
    }

    func answered(_ call: Int, with response: RaftVoteResponse) {
        votes.withLock { $0[call].response = response }
    }

    func register(_ id: String, _ node: RaftNode) {
        nodes.withLock { $0[id] = node }
    }

    func unregister(_ id: String) {
        nodes.withLock { $0[id] = nil }
    }

    /// Cuts every link between `id` and `others`.
    func isolate(_ id: String, from others: [String]) {
        cut.withLock { links in
            for other in others where other != id {
                links.insert(Link(from: id, to: other))
                links.insert(Link(from: other, to: id))
            }
        }
    }

    func heal() {
        cut.withLock { $0.removeAll() }
    }

    func route(from: String, to: String) throws -> RaftNode {
        try check(from: from, to: to)
        guard let node = nodes.withLock({ $0[to] }) else { throw Unreachable() }
        return node
    }

    func check(from: String, to: String) throws {
        if cut.withLock({ $0.contains(Link(from: from, to: to)) }) { throw Unreachable() }
    }

    func transport(for id: String) -> MemoryTransport {
        MemoryTransport(from: id, network: self)
    }
}

/// One server's view of a MemoryNetwork.
struct MemoryTransport: RaftTransport {
    let from: String
    let network: MemoryNetwork

    func requestVote(_ request: RaftVoteRequest, to member: RaftMember) async throws -> RaftVoteResponse {
        let call = network.sent(request, from: from, to: member.id)
        let node = try network.route(from: from, to: member.id)
        let response = await node.handleVote(request)
        try network.check(from: member.id, to: from)  // the answer is lost if the link was cut meanwhile
        network.answered(call, with: response)
        return response
    }

    func appendEntries(_ request: RaftAppendRequest, to member: RaftMember) async throws -> RaftAppendResponse {
        let node = try network.route(from: from, to: member.id)
        let response = await node.handleAppend(request)
        try network.check(from: member.id, to: from)
        return response
    }
}

/// A transport that reaches nobody: for unit tests of one server.
struct UnreachableTransport: RaftTransport {
    func requestVote(_ request: RaftVoteRequest, to member: RaftMember) async throws -> RaftVoteResponse {
        throw MemoryNetwork.Unreachable()
    }

    func appendEntries(_ request: RaftAppendRequest, to member: RaftMember) async throws -> RaftAppendResponse {
        throw MemoryNetwork.Unreachable()
    }
}
