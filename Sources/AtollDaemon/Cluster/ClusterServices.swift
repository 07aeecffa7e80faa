import AtollAPI
import AtollClusterPKI
import AtollClusterStore
import AtollCore
import AtollManager
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

/// Certificates for nodes (the one service a node without a cluster certificate may call).
struct CAService: Atoll_Cluster_V1_CA.SimpleServiceProtocol {
    let cluster: ClusterController

    func getRootCertificate(request: Atoll_Cluster_V1_GetRootCertificateRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_GetRootCertificateResponse
    {
        var response = Atoll_Cluster_V1_GetRootCertificateResponse()
        response.certificatePem = try await cluster.manager().ca.certificatePEM
        return response
    }

    func issueNodeCertificate(request: Atoll_Cluster_V1_IssueNodeCertificateRequest, context: ServerContext)
        async throws -> Atoll_Cluster_V1_IssueNodeCertificateResponse
    {
        let manager = try await cluster.manager()
        let caller = Caller(context)
        let address = request.advertiseAddr.isEmpty ? caller.address : request.advertiseAddr
        let description = NodeDescription(request.description_p)
        let (node, certificate) = try await BlockingWork.run {
            try manager.join(
                token: request.token, csrPEM: request.csrPem, description: description, address: address)
        }
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
        let manager = try await cluster.manager()
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

/// Node sessions: heartbeats.
struct DispatcherService: Atoll_Cluster_V1_Dispatcher.SimpleServiceProtocol {
    let cluster: ClusterController

    func heartbeat(request: Atoll_Cluster_V1_HeartbeatRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_HeartbeatResponse
    {
        let manager = try await cluster.manager()
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
        return response
    }
}

/// Cluster management. Over TCP the caller needs an admin or manager certificate; on the unix
/// socket (root on the manager's host) it is trusted.
struct ControlService: Atoll_Cluster_V1_Control.SimpleServiceProtocol {
    let cluster: ClusterController
    /// Served on the engine's unix socket.
    let local: Bool

    private func manager(_ context: ServerContext) async throws -> Manager {
        let manager = try await cluster.manager()
        if !local { try Caller(context).authorize(manager, roles: [.admin, .manager]) }
        return manager
    }

    func listNodes(request: Atoll_Cluster_V1_ListNodesRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_ListNodesResponse
    {
        let manager = try await manager(context)
        let nodes = try await BlockingWork.run { try manager.listNodes(filters: request.filters) }
        var response = Atoll_Cluster_V1_ListNodesResponse()
        response.nodes = nodes.map { Self.message($0, manager: manager) }
        return response
    }

    func inspectNode(request: Atoll_Cluster_V1_InspectNodeRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_NodeInfo
    {
        let manager = try await manager(context)
        return Self.message(try await BlockingWork.run { try manager.node(request.node) }, manager: manager)
    }

    func updateNode(request: Atoll_Cluster_V1_UpdateNodeRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_NodeInfo
    {
        let manager = try await manager(context)
        var availability: NodeAvailability?
        if !request.availability.isEmpty {
            guard let parsed = NodeAvailability(rawValue: request.availability) else {
                throw AtollError.invalidArgument(
                    "invalid availability \"\(request.availability)\": want active, pause or drain")
            }
            availability = parsed
        }
        if !request.role.isEmpty {
            throw AtollError(.unsupported, "changing a node's role is not supported yet: the cluster has one manager")
        }
        let chosen = availability
        let node = try await BlockingWork.run {
            try manager.updateNode(
                request.node, availability: chosen, labelsToAdd: request.labelAdd,
                labelsToRemove: request.labelRm)
        }
        return Self.message(node, manager: manager)
    }

    func removeNode(request: Atoll_Cluster_V1_RemoveNodeRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_RemoveNodeResponse
    {
        let manager = try await manager(context)
        try await BlockingWork.run { try manager.removeNode(request.node, force: request.force) }
        return Atoll_Cluster_V1_RemoveNodeResponse()
    }

    func joinTokens(request: Atoll_Cluster_V1_JoinTokensRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_JoinTokensResponse
    {
        let manager = try await manager(context)
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
    }

    func clusterInfo(request: Atoll_Cluster_V1_ClusterInfoRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_ClusterInfoResponse
    {
        try await info(try await manager(context))
    }

    func rotateCA(request: Atoll_Cluster_V1_RotateCARequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_ClusterInfoResponse
    {
        let manager = try await manager(context)
        try await cluster.rotateCA()
        return try await info(manager)
    }

    private func info(_ manager: Manager) async throws -> Atoll_Cluster_V1_ClusterInfoResponse {
        let (cluster, progress) = try await BlockingWork.run {
            (try manager.store.cluster(), try manager.rotationProgress())
        }
        var response = Atoll_Cluster_V1_ClusterInfoResponse()
        response.clusterID = manager.clusterID
        response.createdAt = Int64(cluster?.createdAt.timeIntervalSince1970 ?? 0)
        response.caFingerprint = manager.ca.fingerprint
        response.heartbeatPeriodSeconds = manager.heartbeatPeriod
        response.managerAddr = await self.cluster.managerAddress ?? ""
        if let progress { response.caRotation = "\(progress.renewed) of \(progress.of) nodes renewed" }
        return response
    }

    static func message(_ node: Node, manager: Manager) -> Atoll_Cluster_V1_NodeInfo {
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
