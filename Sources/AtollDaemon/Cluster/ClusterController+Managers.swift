import AtollAPI
import AtollClusterStore
import AtollCore
import AtollManager
import AtollRaft
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// Who takes part in the managers' consensus: a manager that joined is admitted once it serves
/// its port (the leader reaches it first), and a manager that leaves or is removed is taken out
/// before its node goes. Neither change is made when the managers left could not agree.
extension ClusterController {
    /// A manager answers the leader within this long to count as reachable.
    static let reachableWithin = 2.0

    // MARK: - Admission

    /// On a manager outside the consensus (it just joined, or restarted before it was admitted):
    /// asks the leader to count it, through the managers it knows, until it is admitted, refused,
    /// or `deadline` passes (nil: keeps asking).
    func requestAdmission(_ membership: ClusterMembership, deadline: Duration?) async throws {
        let started = ContinuousClock.now
        let known = membership.managerCandidates.filter { $0 != membership.managerAddress }
        let candidates = known.isEmpty ? [membership.managerAddress] : known
        var redirect: String?
        var attempt = 0
        var failure: (any Error)?
        while let consensus {
            if await consensus.raft.status.members.contains(where: { $0.id == membership.nodeID }) { return }
            let address = redirect ?? candidates[attempt % candidates.count]
            redirect = nil
            attempt += 1
            guard let credentials = served.towardPeers(consensus.roots) else { throw Self.notMember }
            do {
                let transport = try HTTP2ClientTransport.Posix(
                    target: try ClusterTLS.target(address),
                    transportSecurity: try ClusterTLS.clientSecurity(credentials))
                _ = try await withGRPCClient(transport: transport) { client in
                    try await Atoll_Cluster_V1_Raft.Client(wrapping: client).addMember(
                        Atoll_Cluster_V1_RaftAddMemberRequest(), options: .within(seconds: 20))
                }
                logger.info("admitted to the managers' consensus through \(address)")
                return
            } catch {
                guard let refusal = error as? RPCError else { throw error }
                if let leader = Array(refusal.metadata[stringValues: Self.leaderMetadataKey]).first, leader != address {
                    redirect = leader
                    continue
                }
                if [.permissionDenied, .failedPrecondition, .invalidArgument].contains(refusal.code) {
                    throw AtollError(AtollError.Code(refusal.code), refusal.message)
                }
                failure = refusal
            }
            if let deadline, started.duration(to: .now) > deadline {
                throw AtollError(
                    .unavailable,
                    "the leader has not admitted this manager to the consensus: \((failure as? RPCError)?.message ?? "\(failure.map { "\($0)" } ?? "no answer")")"
                )
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw Self.notMember
    }

    /// On the leader: makes a node that joined as a manager a member of the consensus, once this
    /// leader reaches its port and the managers with it would have a majority that answers.
    func admitManager(id: String) async throws {
        let manager = try await leaderOnly()
        guard let consensus, let membership else { throw Self.notMember }
        guard let node = try await BlockingWork.run({ try manager.store.node(id) }) else {
            throw AtollError(.permissionDenied, "node \(id) was removed from the cluster")
        }
        guard node.role == .manager, !node.managerAddress.isEmpty else {
            throw AtollError(.permissionDenied, "node \(id) did not join as a manager")
        }
        let status = await consensus.raft.status
        if status.members.contains(where: { $0.id == id }) { return }
        let member = RaftMember(id: id, address: node.managerAddress)
        do {
            // An empty append of this term: harmless, and proof the leader reaches it.
            _ = try await consensus.transport.appendEntries(
                RaftAppendRequest(
                    term: status.term, leaderID: membership.nodeID, leaderAddress: membership.managerAddress,
                    prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0),
                to: member)
        } catch {
            throw AtollError(
                .unavailable, "the leader cannot reach manager \(id) at \(node.managerAddress): \(error)")
        }
        try Self.requireMajority(
            of: status.members + [member], status, selfID: membership.nodeID, reached: [id],
            change: "adding manager \(node.hostname)")
        do {
            try await consensus.raft.addMember(member)
        } catch {
            throw RaftReplicator.storeError(error)
        }
        logger.info("manager \(id) at \(member.address) joins the managers' consensus")
    }

    /// Waits until a manager that just joined holds the cluster's state and knows its leader,
    /// so that it answers as soon as `join` returns.
    func awaitReplica(_ store: ClusterStore) async throws {
        for _ in 0..<200 {
            if let raft = consensus?.raft, await raft.status.leader != nil,
                try await BlockingWork.run({ try store.cluster() }) != nil
            {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw AtollError(
            .unavailable,
            "joined as a manager, but the leader has not sent this node the cluster's state within 20 s (it keeps trying: see atoll cluster info)"
        )
    }

    // MARK: - Removal

    /// On the leader: takes a manager out of the consensus (before its node is removed), unless
    /// the managers left would have no majority that answers. Nothing for a node outside it.
    func removeManager(id: String) async throws {
        guard let consensus, let membership, running != nil else {
            throw AtollError(.unavailable, "this manager does not lead")
        }
        let status = await consensus.raft.status
        guard status.members.contains(where: { $0.id == id }) else { return }
        try Self.requireMajority(
            of: status.members.filter { $0.id != id }, status, selfID: membership.nodeID,
            change: "removing manager \(id)")
        do {
            try await consensus.raft.removeMember(id: id)
        } catch {
            throw RaftReplicator.storeError(error)
        }
        logger.info("manager \(id) left the managers' consensus")
    }

    /// Throws unless a majority of `members` answers now: this leader, the managers that
    /// answered it within `reachableWithin`, and `reached` (just reached).
    static func requireMajority(
        of members: [RaftMember], _ status: RaftStatus, selfID: String, reached: Set<String> = [], change: String
    ) throws {
        let answering = members.filter { member in
            member.id == selfID || reached.contains(member.id)
                || (status.lastContact[member.id].map { $0 < reachableWithin } ?? false)
        }
        let needed = members.count / 2 + 1
        guard answering.count >= needed else {
            throw AtollError(
                .failedPrecondition,
                "\(change) would leave \(members.count) managers of which \(answering.count) answer and \(needed) are needed to agree: bring the others back first"
            )
        }
    }

    /// Takes this manager out of the cluster through the leader: its place in the consensus and
    /// its node. A manager the consensus no longer counts only stops; with no leader to ask, it
    /// stops too (the others then count it as unreachable until `atoll node rm` on one of them).
    func leaveManagers(_ membership: ClusterMembership) async throws {
        guard let status = await consensus?.raft.status,
            status.members.contains(where: { $0.id == membership.nodeID }), status.members.count > 1
        else { return }
        let route: Route
        do {
            route = try await self.route()
        } catch {
            logger.warning("leaving without the others' agreement (\(error)): remove this node on a manager later")
            return
        }
        switch route {
        case .local(let manager):
            try Self.requireMajority(
                of: status.members.filter { $0.id != membership.nodeID }, status, selfID: membership.nodeID,
                change: "this manager leaving")
            // The node goes first: once out of the consensus, this leader can write nothing.
            do { try await BlockingWork.run { try manager.removeOwnNode() } } catch {
                guard (error as? AtollError)?.code == .notFound else { throw error }
            }
            try await removeManager(id: membership.nodeID)
        case .leader(let address, let credentials):
            var removal = Atoll_Cluster_V1_RemoveNodeRequest()
            removal.node = membership.nodeID
            removal.force = true
            let request = removal
            _ = try await Self.forward(to: address, credentials) { client in
                try await Atoll_Cluster_V1_Control.Client(wrapping: client).removeNode(
                    request, options: .within(seconds: 45))
            }
        }
    }
}
