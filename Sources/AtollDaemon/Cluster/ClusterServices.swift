import AtollAPI
import AtollClusterPKI
import AtollClusterStore
import AtollCore
import AtollManager
import AtollRaft
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import X509

/// Who called, from the TLS session: the identity of a certificate the cluster CA validated,
/// or (unvalidated) the certificate shown, or nothing (the unix socket).
struct Caller {
    var identity: CertificateIdentity?
    /// The validated certificate the identity comes from.
    var certificate: Certificate?
    var unvalidated: Certificate?
    /// The caller's IP, from the transport's peer ("ipv4:10.0.0.2:53122").
    var address: String

    init(_ context: ServerContext) {
        let transport = context.transportSpecific as? HTTP2ServerTransport.Posix.Context
        if let chain = transport?.peerCertificateChain {
            identity = CertificateIdentity(certificate: chain.leaf)
            certificate = chain.leaf
        } else {
            unvalidated = transport?.peerCertificate
        }
        address = Self.ip(ofPeer: context.remotePeer)
    }

    static func ip(ofPeer peer: String) -> String {
        var rest = Substring(peer)
        for prefix in ["ipv4:", "ipv6:"] where rest.hasPrefix(prefix) { rest = rest.dropFirst(prefix.count) }
        if rest.hasPrefix("["), let end = rest.firstIndex(of: "]") {
            return String(rest[rest.index(after: rest.startIndex)..<end])
        }
        if let colon = rest.lastIndex(of: ":"), rest.firstIndex(of: ":") == colon { return String(rest[..<colon]) }
        return String(rest)
    }

    /// Why a certificate that is not the cluster's was refused, for the error.
    func refusal(_ manager: Manager) -> AtollError {
        guard let unvalidated else {
            return AtollError(.permissionDenied, "a certificate of this cluster is required")
        }
        if unvalidated.issuer == manager.ca.certificate.subject, Date() > unvalidated.notValidAfter {
            return AtollError(
                .permissionDenied, "the client certificate expired at \(unvalidated.notValidAfter): get a new one")
        }
        if unvalidated.issuer == manager.ca.certificate.subject, Date() < unvalidated.notValidBefore {
            return AtollError(.permissionDenied, "the client certificate is not valid yet")
        }
        if unvalidated.issuer == manager.ca.certificate.subject {
            return AtollError(
                .permissionDenied,
                "the client certificate is from this cluster's previous CA (it was rotated): leave the cluster and join again with the new token"
            )
        }
        return AtollError(
            .permissionDenied, "the client certificate was not issued by this cluster's CA (\(unvalidated.issuer))")
    }

    /// The caller's identity checked by the manager, or the refusal.
    func authorize(_ manager: Manager, roles: Set<ClusterRole>) throws -> (
        identity: CertificateIdentity, node: Node?
    ) {
        guard identity != nil else { throw refusal(manager) }
        return try manager.authorize(identity, roles: roles)
    }
}

extension ClusterController {
    /// For calls that need the leader itself (the caller's own certificate matters): the
    /// manager, or an error that names where the leader is (the agent follows it).
    func leaderOnly() async throws -> Manager {
        switch try await route() {
        case .local(let manager): return manager
        case .leader(let address, _):
            var metadata = Metadata()
            metadata.addString(address, forKey: ClusterController.leaderMetadataKey)
            throw RPCError(
                code: .unavailable, message: "this manager does not lead the cluster: the leader is at \(address)",
                metadata: metadata)
        }
    }

    static let leaderMetadataKey = "atoll-leader"
}

/// Certificates for nodes (the one service a node without a cluster certificate may call).
struct CAService: Atoll_Cluster_V1_CA.SimpleServiceProtocol {
    let cluster: ClusterController

    func getRootCertificate(request: Atoll_Cluster_V1_GetRootCertificateRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_GetRootCertificateResponse
    {
        switch try await cluster.route() {
        case .local(let manager):
            var response = Atoll_Cluster_V1_GetRootCertificateResponse()
            response.certificatePem = manager.ca.certificatePEM
            return response
        case .leader(let address, let credentials):
            return try await ClusterController.forward(to: address, credentials) { client in
                try await Atoll_Cluster_V1_CA.Client(wrapping: client).getRootCertificate(
                    request, options: .within(seconds: 20))
            }
        }
    }

    /// A join, answered by the leader: a manager that does not lead sends it on, with the
    /// joining node's address (the leader would otherwise see this manager's).
    func issueNodeCertificate(request: Atoll_Cluster_V1_IssueNodeCertificateRequest, context: ServerContext)
        async throws -> Atoll_Cluster_V1_IssueNodeCertificateResponse
    {
        let caller = Caller(context)
        let manager: Manager
        switch try await cluster.route() {
        case .local(let leading): manager = leading
        case .leader(let address, let credentials):
            var forwarded = request
            if forwarded.advertiseAddr.isEmpty { forwarded.advertiseAddr = caller.address }
            return try await ClusterController.forward(to: address, credentials) { [forwarded] client in
                try await Atoll_Cluster_V1_CA.Client(wrapping: client).issueNodeCertificate(
                    forwarded, options: .within(seconds: 20))
            }
        }
        let address = request.advertiseAddr.isEmpty ? caller.address : request.advertiseAddr
        let description = NodeDescription(request.description_p)
        let (node, certificate) = try await BlockingWork.run {
            try manager.join(
                token: request.token, csrPEM: request.csrPem, description: description, address: address,
                managerAddress: request.managerAddr)
        }
        // A manager counts in the consensus once it serves its port and asks (Raft.AddMember).
        var response = Atoll_Cluster_V1_IssueNodeCertificateResponse()
        response.nodeID = node.id
        response.role = node.role.rawValue
        response.clusterID = manager.clusterID
        response.certificatePem = try certificate.serializeAsPEM().pemString
        response.caCertificatePem = manager.ca.certificatePEM
        return response
    }

    func renewNodeCertificate(request: Atoll_Cluster_V1_RenewNodeCertificateRequest, context: ServerContext)
        async throws -> Atoll_Cluster_V1_IssueNodeCertificateResponse
    {
        let manager = try await cluster.leaderOnly()
        let (identity, _) = try Caller(context).authorize(manager, roles: [.worker, .manager])
        let certificate = try await BlockingWork.run { try manager.renew(identity, csrPEM: request.csrPem) }
        var response = Atoll_Cluster_V1_IssueNodeCertificateResponse()
        response.nodeID = identity.nodeID
        response.role = identity.role.rawValue
        response.clusterID = manager.clusterID
        response.certificatePem = try certificate.serializeAsPEM().pemString
        response.caCertificatePem = manager.ca.certificatePEM
        return response
    }
}

/// Node sessions: heartbeats, to the leader (its health tracking is in memory).
struct DispatcherService: Atoll_Cluster_V1_Dispatcher.SimpleServiceProtocol {
    let cluster: ClusterController

    func heartbeat(request: Atoll_Cluster_V1_HeartbeatRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_HeartbeatResponse
    {
        let manager = try await cluster.leaderOnly()
        let caller = Caller(context)
        let (identity, _) = try caller.authorize(manager, roles: [.worker, .manager])
        let description = request.hasDescription_p ? NodeDescription(request.description_p) : nil
        let presented = caller.certificate
        let answer = try await BlockingWork.run {
            try manager.heartbeat(
                nodeID: identity.nodeID, description: description, address: nil, presentedCertificate: presented)
        }
        var response = Atoll_Cluster_V1_HeartbeatResponse()
        response.periodMs = Int64(answer.period * 1000)
        response.renewCertificate = answer.renewCertificate
        response.trustedRootsPem = answer.trustedRoots
        if let status = await cluster.consensusStatus() {
            response.managers = ClusterController.managerAddresses(status)
        }
        return response
    }
}

/// Cluster management. Over TCP the caller needs an admin or manager certificate; on the unix
/// socket (root on the manager's host) it is trusted. A manager that does not lead sends each
/// call on to the leader with its own certificate, so that any manager can be managed through.
struct ControlService: Atoll_Cluster_V1_Control.SimpleServiceProtocol {
    let cluster: ClusterController
    /// Served on the engine's unix socket.
    let local: Bool

    private typealias Client = Atoll_Cluster_V1_Control.Client<HTTP2ClientTransport.Posix>

    /// Answers here when this manager leads, else forwards to the leader. Either way, the caller
    /// must hold an admin or manager certificate (over TCP).
    private func answer<Response: Sendable>(
        _ context: ServerContext, here: (Manager) async throws -> Response,
        forward: @escaping @Sendable (Client) async throws -> Response
    ) async throws -> Response {
        switch try await cluster.route() {
        case .local(let manager):
            if !local { _ = try Caller(context).authorize(manager, roles: [.admin, .manager]) }
            return try await here(manager)
        case .leader(let address, let credentials):
            if !local { try await authorizeLocally(context) }
            return try await ClusterController.forward(to: address, credentials) { client in
                try await forward(Client(wrapping: client))
            }
        }
    }

    /// Before forwarding: the caller's certificate names an admin or a manager of this cluster
    /// that the replica here still has (the leader checks our certificate, not the caller's).
    private func authorizeLocally(_ context: ServerContext) async throws {
        let caller = Caller(context)
        guard let identity = caller.identity, [.admin, .manager].contains(identity.role) else {
            throw AtollError(
                .permissionDenied,
                caller.identity.map { "a \($0.role.rawValue) certificate cannot call this: it needs admin or manager" }
                    ?? "a certificate of this cluster is required")
        }
        guard identity.clusterID == (await cluster.clusterID) else {
            throw AtollError(.permissionDenied, "the certificate is for another cluster (\(identity.clusterID))")
        }
        if identity.role == .manager, !(await cluster.holdsNode(identity.nodeID)) {
            throw AtollError(.permissionDenied, "node \(identity.nodeID) was removed from the cluster")
        }
    }

    /// "self" means this node, wherever the call is answered.
    private func resolvingSelf(_ reference: String) async -> String {
        guard reference == "self" else { return reference }
        return await cluster.nodeID ?? reference
    }

    /// Marks the node this call came through, after the leader answered it.
    private func markingSelf(_ node: Atoll_Cluster_V1_NodeInfo) async -> Atoll_Cluster_V1_NodeInfo {
        var node = node
        node.self_p = node.id == (await cluster.nodeID)
        return node
    }

    func listNodes(request: Atoll_Cluster_V1_ListNodesRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_ListNodesResponse
    {
        var response = try await answer(context) { manager in
            let nodes = try await BlockingWork.run { try manager.listNodes(filters: request.filters) }
            let status = await cluster.consensusStatus()
            var response = Atoll_Cluster_V1_ListNodesResponse()
            response.nodes = nodes.map { Self.message($0, manager: manager, status: status) }
            return response
        } forward: {
            try await $0.listNodes(request, options: .within(seconds: 20))
        }
        var marked: [Atoll_Cluster_V1_NodeInfo] = []
        for node in response.nodes { marked.append(await markingSelf(node)) }
        response.nodes = marked
        return response
    }

    func inspectNode(request: Atoll_Cluster_V1_InspectNodeRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_NodeInfo
    {
        var request = request
        request.node = await resolvingSelf(request.node)
        let node = try await answer(context) { [request] manager in
            let node = try await BlockingWork.run { try manager.node(request.node) }
            return Self.message(node, manager: manager, status: await cluster.consensusStatus())
        } forward: { [request] in
            try await $0.inspectNode(request, options: .within(seconds: 20))
        }
        return await markingSelf(node)
    }

    func updateNode(request: Atoll_Cluster_V1_UpdateNodeRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_NodeInfo
    {
        var availability: NodeAvailability?
        if !request.availability.isEmpty {
            guard let parsed = NodeAvailability(rawValue: request.availability) else {
                throw AtollError.invalidArgument(
                    "invalid availability \"\(request.availability)\": want active, pause or drain")
            }
            availability = parsed
        }
        if !request.role.isEmpty {
            throw AtollError(
                .unsupported,
                "changing a node's role is not supported: a manager joins with the manager token and leaves with atoll cluster leave --force"
            )
        }
        var request = request
        request.node = await resolvingSelf(request.node)
        let chosen = availability
        let node = try await answer(context) { [request] manager in
            let node = try await BlockingWork.run {
                try manager.updateNode(
                    request.node, availability: chosen, labelsToAdd: request.labelAdd,
                    labelsToRemove: request.labelRm)
            }
            return Self.message(node, manager: manager, status: await cluster.consensusStatus())
        } forward: { [request] in
            try await $0.updateNode(request, options: .within(seconds: 20))
        }
        return await markingSelf(node)
    }

    /// A manager's node leaves the consensus first, so the others' quorum stops counting it.
    func removeNode(request: Atoll_Cluster_V1_RemoveNodeRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_RemoveNodeResponse
    {
        try await answer(context) { manager in
            let node: Node
            do {
                node = try await BlockingWork.run { try manager.removableNode(request.node, force: request.force) }
            } catch {
                // A manager whose node is gone (its leave was cut short) may still count.
                guard (error as? AtollError)?.code == .notFound else { throw error }
                try await cluster.removeManager(id: request.node)
                throw error
            }
            if node.role == .manager { try await cluster.removeManager(id: node.id) }
            try await BlockingWork.run { try manager.removeNode(node.id, force: true) }
            return Atoll_Cluster_V1_RemoveNodeResponse()
        } forward: {
            try await $0.removeNode(request, options: .within(seconds: 45))
        }
    }

    func joinTokens(request: Atoll_Cluster_V1_JoinTokensRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_JoinTokensResponse
    {
        try await answer(context) { manager in
            if !request.rotate.isEmpty {
                guard let role = NodeRole(rawValue: request.rotate) else {
                    throw AtollError.invalidArgument("invalid role \"\(request.rotate)\": want worker or manager")
                }
                try await BlockingWork.run { try manager.rotateToken(role) }
            }
            let tokens = try await BlockingWork.run { try manager.tokens() }
            var response = Atoll_Cluster_V1_JoinTokensResponse()
            response.worker = tokens.worker
            response.manager = tokens.manager
            return response
        } forward: {
            try await $0.joinTokens(request, options: .within(seconds: 20))
        }
    }

    func clusterInfo(request: Atoll_Cluster_V1_ClusterInfoRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_ClusterInfoResponse
    {
        try await answer(context) { manager in
            try await info(manager)
        } forward: {
            try await $0.clusterInfo(request, options: .within(seconds: 20))
        }
    }

    func rotateCA(request: Atoll_Cluster_V1_RotateCARequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_ClusterInfoResponse
    {
        try await answer(context) { manager in
            try await BlockingWork.run { try manager.rotateCA() }
            return try await info(manager)
        } forward: {
            try await $0.rotateCA(request, options: .within(seconds: 20))
        }
    }

    private func info(_ manager: Manager) async throws -> Atoll_Cluster_V1_ClusterInfoResponse {
        let (cluster, progress, nodes) = try await BlockingWork.run {
            (try manager.store.cluster(), try manager.rotationProgress(), try manager.store.nodes(role: .manager))
        }
        var response = Atoll_Cluster_V1_ClusterInfoResponse()
        response.clusterID = manager.clusterID
        response.createdAt = Int64(cluster?.createdAt.timeIntervalSince1970 ?? 0)
        response.caFingerprint = manager.ca.fingerprint
        response.heartbeatPeriodSeconds = manager.heartbeatPeriod
        response.managerAddr = await self.cluster.managerAddress ?? ""
        if let progress { response.caRotation = "\(progress.renewed) of \(progress.of) nodes renewed" }
        if let status = await self.cluster.consensusStatus() {
            response.raftTerm = status.term
            response.raftCommitIndex = status.commitIndex
            response.managers = status.members.sorted {
                ($0.id == status.leader?.id ? 0 : 1, $0.id) < ($1.id == status.leader?.id ? 0 : 1, $1.id)
            }.map { member in
                let hostname = nodes.first { $0.id == member.id }?.hostname ?? "?"
                return "\(member.id) \(hostname) \(member.address) \(Self.managerStatus(member.id, status))"
            }
        }
        return response
    }

    /// leader, reachable (answered the leader within the last 2 s) or unreachable; empty for a
    /// node outside the consensus.
    static func managerStatus(_ id: String, _ status: RaftStatus) -> String {
        guard status.members.contains(where: { $0.id == id }) else { return "joining" }
        if status.leader?.id == id { return "leader" }
        guard let heard = status.lastContact[id] else { return "unreachable" }
        return heard < ClusterController.reachableWithin ? "reachable" : "unreachable"
    }

    static func message(_ node: Node, manager: Manager, status: RaftStatus?) -> Atoll_Cluster_V1_NodeInfo {
        var info = Atoll_Cluster_V1_NodeInfo()
        info.id = node.id
        info.version = node.version
        info.createdAt = Int64(node.createdAt.timeIntervalSince1970)
        info.updatedAt = Int64(node.updatedAt.timeIntervalSince1970)
        info.role = node.role.rawValue
        info.availability = node.availability.rawValue
        info.labels = node.labels
        info.state = node.state.rawValue
        info.stateMessage = node.stateMessage
        info.address = node.address
        info.description_p.hostname = node.hostname
        info.description_p.engineVersion = node.engineVersion
        info.description_p.os = node.os
        info.description_p.architecture = node.architecture
        info.description_p.cpus = Int64(node.cpus)
        info.description_p.memoryBytes = node.memoryBytes
        info.certificateExpiry = Int64(node.certificateExpiry?.timeIntervalSince1970 ?? 0)
        info.self_p = node.id == manager.nodeID
        if node.role == .manager, let status { info.managerStatus = managerStatus(node.id, status) }
        return info
    }
}

extension NodeDescription {
    init(_ message: Atoll_Cluster_V1_NodeDescription) {
        self.init(
            hostname: message.hostname, engineVersion: message.engineVersion, os: message.os,
            architecture: message.architecture, cpus: Int(message.cpus), memoryBytes: message.memoryBytes)
    }

    var message: Atoll_Cluster_V1_NodeDescription {
        var message = Atoll_Cluster_V1_NodeDescription()
        message.hostname = hostname
        message.engineVersion = engineVersion
        message.os = os
        message.architecture = architecture
        message.cpus = Int64(cpus)
        message.memoryBytes = memoryBytes
        return message
    }
}
