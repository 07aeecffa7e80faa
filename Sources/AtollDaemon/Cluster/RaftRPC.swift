import AtollAPI
import AtollClient
import AtollClusterPKI
import AtollClusterStore
import AtollCore
import AtollRaft
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// The managers' consensus messages over the cluster port: one long-lived mutual-TLS connection
/// to each other manager, made with this manager's node certificate (again when it changes).
final class GRPCRaftTransport: RaftTransport {
    private struct Peer {
        var client: GRPCClient<HTTP2ClientTransport.Posix>
        var running: Task<Void, Never>
        /// The certificate and roots the connection was made with.
        var identity: String
    }
    private let credentials: @Sendable () -> NodeCredentials?
    private let peers = Mutex<[String: Peer]>([:])
    private let closed = Mutex(false)

    /// `credentials`: the certificate the cluster port serves with (nil while there is none).
    init(credentials: @escaping @Sendable () -> NodeCredentials?) {
        self.credentials = credentials
    }

    func requestVote(_ request: RaftVoteRequest, to member: RaftMember) async throws -> RaftVoteResponse {
        try await calling(member.address) { client in
            RaftVoteResponse(
                try await Atoll_Cluster_V1_Raft.Client(wrapping: client).requestVote(
                    Atoll_Cluster_V1_RaftVoteRequest(request), options: .within(seconds: 2)))
        }
    }

    func appendEntries(_ request: RaftAppendRequest, to member: RaftMember) async throws -> RaftAppendResponse {
        try await calling(member.address) { client in
            RaftAppendResponse(
                try await Atoll_Cluster_V1_Raft.Client(wrapping: client).appendEntries(
                    Atoll_Cluster_V1_RaftAppendRequest(request), options: .within(seconds: 5)))
        }
    }

    /// A call over the connection to `address`. A failed call drops the connection, so that the
    /// next one dials at once rather than after gRPC's reconnection backoff (which grows to
    /// minutes): a manager that restarts must hear from the leader before its election timeout.
    private func calling<Response>(
        _ address: String, _ call: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Response
    ) async throws -> Response {
        let client = try client(for: address)
        do {
            return try await call(client)
        } catch {
            let dropped = peers.withLock { peers -> Peer? in
                guard let peer = peers[address], peer.client === client else { return nil }
                return peers.removeValue(forKey: address)
            }
            dropped?.client.beginGracefulShutdown()
            throw error
        }
    }

    /// Closes every connection; later calls fail.
    func close() {
        let all = peers.withLock { peers in
            closed.withLock { $0 = true }
            defer { peers = [:] }
            return Array(peers.values)
        }
        for peer in all { peer.client.beginGracefulShutdown() }
    }

    /// The connection to `address`, made anew when this manager's certificate or the roots it
    /// trusts changed.
    private func client(for address: String) throws -> GRPCClient<HTTP2ClientTransport.Posix> {
        guard !closed.withLock({ $0 }), let credentials = credentials() else {
            throw AtollError(.unavailable, "this manager's cluster port is not serving")
        }
        let identity = ([credentials.certificate] + credentials.roots).map(\.serialNumber.description).joined(
            separator: "/")
        if let peer = peers.withLock({ $0[address] }), peer.identity == identity { return peer.client }
        let client = GRPCClient(
            transport: try HTTP2ClientTransport.Posix(
                target: try ClusterTLS.target(address), transportSecurity: try ClusterTLS.clientSecurity(credentials)))
        let running = Task { _ = try? await client.runConnections() }
        let (replaced, open) = peers.withLock { peers -> (Peer?, Bool) in
            // Checked under the lock close() empties the table with, so no connection outlives it.
            guard !closed.withLock({ $0 }) else { return (nil, false) }
            defer { peers[address] = Peer(client: client, running: running, identity: identity) }
            return (peers[address], true)
        }
        replaced?.client.beginGracefulShutdown()
        guard open else {
            client.beginGracefulShutdown()
            throw AtollError(.unavailable, "this manager's cluster port is not serving")
        }
        return client
    }
}

/// Serves the consensus messages to the other managers: only a manager certificate of this
/// cluster is answered, for messages it sends as itself, from a manager the cluster still has
/// (the replica's nodes, or the configuration while its node is being removed). A manager that
/// just joined, whose replica is still empty, follows whoever the leader is.
struct RaftService: Atoll_Cluster_V1_Raft.SimpleServiceProtocol {
    let cluster: ClusterController
    let raft: RaftNode
    let store: ClusterStore
    let clusterID: String

    func requestVote(request: Atoll_Cluster_V1_RaftVoteRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_RaftVoteResponse
    {
        try await authorize(context, sender: request.candidateID)
        return Atoll_Cluster_V1_RaftVoteResponse(await raft.handleVote(RaftVoteRequest(request)))
    }

    func appendEntries(request: Atoll_Cluster_V1_RaftAppendRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_RaftAppendResponse
    {
        try await authorize(context, sender: request.leaderID)
        return Atoll_Cluster_V1_RaftAppendResponse(await raft.handleAppend(try RaftAppendRequest(request)))
    }

    func addMember(request: Atoll_Cluster_V1_RaftAddMemberRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_RaftAddMemberResponse
    {
        let identity = try manager(context)
        try await cluster.admitManager(id: identity.nodeID)
        return Atoll_Cluster_V1_RaftAddMemberResponse()
    }

    private func manager(_ context: ServerContext) throws -> CertificateIdentity {
        guard let identity = Caller(context).identity, identity.role == .manager, identity.clusterID == clusterID
        else {
            throw RPCError(code: .permissionDenied, message: "only the cluster's managers take part in its consensus")
        }
        return identity
    }

    private func authorize(_ context: ServerContext, sender: String) async throws {
        let identity = try manager(context)
        guard identity.nodeID == sender else {
            throw RPCError(
                code: .permissionDenied,
                message: "the certificate is node \(identity.nodeID)'s, the message says it is from \(sender)")
        }
        let known = try await BlockingWork.run { [store] in
            try store.cluster() == nil || store.node(sender) != nil
        }
        if known { return }
        guard await raft.status.members.contains(where: { $0.id == sender }) else {
            throw RPCError(code: .permissionDenied, message: "node \(sender) was removed from the cluster")
        }
    }
}

// MARK: - Messages

extension Atoll_Cluster_V1_RaftVoteRequest {
    init(_ request: RaftVoteRequest) {
        self.init()
        term = request.term
        candidateID = request.candidateID
        lastLogIndex = request.lastLogIndex
        lastLogTerm = request.lastLogTerm
        preVote = request.preVote
    }
}

extension RaftVoteRequest {
    init(_ message: Atoll_Cluster_V1_RaftVoteRequest) {
        self.init(
            term: message.term, candidateID: message.candidateID, lastLogIndex: message.lastLogIndex,
            lastLogTerm: message.lastLogTerm, preVote: message.preVote)
    }
}

extension Atoll_Cluster_V1_RaftVoteResponse {
    init(_ response: RaftVoteResponse) {
        self.init()
        term = response.term
        granted = response.granted
    }
}

extension RaftVoteResponse {
    init(_ message: Atoll_Cluster_V1_RaftVoteResponse) {
        self.init(term: message.term, granted: message.granted)
    }
}

extension Atoll_Cluster_V1_RaftAppendRequest {
    init(_ request: RaftAppendRequest) {
        self.init()
        term = request.term
        leaderID = request.leaderID
        leaderAddr = request.leaderAddress
        prevLogIndex = request.prevLogIndex
        prevLogTerm = request.prevLogTerm
        entries = request.entries.map { entry in
            var message = Atoll_Cluster_V1_RaftEntry()
            message.index = entry.index
            message.term = entry.term
            message.kind = entry.kind.rawValue
            message.data = Data(entry.data)
            return message
        }
        leaderCommit = request.leaderCommit
    }
}

extension RaftAppendRequest {
    init(_ message: Atoll_Cluster_V1_RaftAppendRequest) throws {
        let entries = try message.entries.map { entry in
            guard let kind = RaftEntry.Kind(rawValue: entry.kind) else {
                throw RPCError(code: .invalidArgument, message: "log entry \(entry.index) has kind \"\(entry.kind)\"")
            }
            return RaftEntry(index: entry.index, term: entry.term, kind: kind, data: Array(entry.data))
        }
        self.init(
            term: message.term, leaderID: message.leaderID, leaderAddress: message.leaderAddr,
            prevLogIndex: message.prevLogIndex, prevLogTerm: message.prevLogTerm, entries: entries,
            leaderCommit: message.leaderCommit)
    }
}

extension Atoll_Cluster_V1_RaftAppendResponse {
    init(_ response: RaftAppendResponse) {
        self.init()
        term = response.term
        success = response.success
        matchIndex = response.matchIndex
        conflictIndex = response.conflictIndex
    }
}

extension RaftAppendResponse {
    init(_ message: Atoll_Cluster_V1_RaftAppendResponse) {
        self.init(
            term: message.term, success: message.success, matchIndex: message.matchIndex,
            conflictIndex: message.conflictIndex)
    }
}
