import Synchronization

@testable import AtollRaft

/// Routes RPCs between RaftNodes in memory. A link can be cut (both directions); a call over a
/// cut link, or to a server that is not registered (stopped), throws.
final class MemoryNetwork: Sendable {
    struct Link: Hashable {
        let from: String
        let to: String
    }

    struct Unreachable: Error {}

    private let nodes = Mutex<[String: RaftNode]>([:])
    private let cut = Mutex<Set<Link>>([])

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
        let node = try network.route(from: from, to: member.id)
        let response = await node.handleVote(request)
        try network.check(from: member.id, to: from)  // the answer is lost if the link was cut meanwhile
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
