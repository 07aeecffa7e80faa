import AtollAPI
import AtollClient
import AtollClusterPKI
import AtollClusterStore
import AtollCore
import AtollEngine
import AtollManager
import AtollRaft
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Synchronization
import X509

/// This host's part in a cluster: nothing, a manager or a worker. Every manager runs its share of
/// the managers' consensus (Raft over the cluster port, the store replicated) and serves the
/// cluster port; the one that leads also runs the `Manager` (health, CA, joins) and its loops,
/// while the others send what needs the leader to it. A worker, and a manager that does not lead,
/// run an agent that heartbeats to the leader. Init, join and leave move between these; at start,
/// atolld resumes what ROOT/cluster says.
actor ClusterController {
    let files: ClusterFiles
    let description: NodeDescription
    var membership: ClusterMembership?
    /// A manager's consensus: its store and Raft server.
    var consensus: Consensus?
    /// The manager, while this node leads.
    var running: Manager?
    var leaderTasks: [Task<Void, Never>] = []
    var server: GRPCServer<HTTP2ServerTransport.Posix>?
    var serving: Task<Void, Never>?
    var statusTask: Task<Void, Never>?
    var bundleTask: Task<Void, Never>?
    var admissionTask: Task<Void, Never>?
    /// The credentials the cluster port serves with (kept, so that upkeep reads no files; the
    /// consensus transport connects with them).
    let served = ServedCredentials()
    var agent: Agent?
    var agentTask: Task<Void, Never>?
    /// Set while init, join or leave runs: the actor is reentrant across their awaits.
    var changing = false
    let logger = Logger(label: "atoll.cluster")

    struct Consensus {
        var store: ClusterStore
        var raft: RaftNode
        var transport: GRPCRaftTransport
        var roots: RootsCache
    }

    /// Where a cluster call is answered: here (this node leads), or by the leader at `address`.
    enum Route {
        case local(Manager)
        case leader(address: String, credentials: NodeCredentials)
    }

    init(root: String, host: HostFacts) {
        files = ClusterFiles(root: root)
        description = NodeDescription(
            hostname: host.hostname, engineVersion: AtollVersion.version, os: "linux",
            architecture: host.architecture, cpus: host.cpus, memoryBytes: host.memoryBytes)
    }

    /// Where to answer a cluster call from: here when this node leads, else the leader. An
    /// election, or a new leader catching up, takes a second or two: a call waits for it.
    func route() async throws -> Route {
        guard let membership else { throw Self.notMember }
        guard membership.role == .manager, let consensus else { throw Self.notManager }
        for _ in 0..<50 {
            if let running { return .local(running) }
            let status = await consensus.raft.status
            if let leader = status.leader, leader.id != membership.nodeID,
                let credentials = served.towardPeers(consensus.roots)
            {
                return .leader(address: leader.address, credentials: credentials)
            }
            try await Task.sleep(for: .milliseconds(100))
            guard self.consensus?.raft === consensus.raft else { throw Self.notMember }
        }
        throw AtollError(
            .unavailable,
            "the cluster has no leader: an election is under way, or fewer than a majority of its managers are up")
    }

    /// This host's cluster, while it is in one.
    var clusterID: String? { membership?.clusterID }

    /// Whether this manager's replica still has the node (a removed manager's certificate stays
    /// valid until it expires).
    func holdsNode(_ id: String) async -> Bool {
        guard let store = consensus?.store else { return false }
        return (try? await BlockingWork.run { try store.node(id) != nil }) ?? false
    }

    /// The consensus as it stands here, on a manager.
    func consensusStatus() async -> RaftStatus? {
        await consensus?.raft.status
    }

    static let notMember = AtollError(
        .failedPrecondition, "this node is not part of a cluster: atoll cluster init or atoll cluster join")
    static let notManager = AtollError(
        .failedPrecondition,
        "this node is not a cluster manager: manage the cluster on a manager (atoll -H tcp://MANAGER:PORT --tls-dir DIR)"
    )

    /// The address nodes join through, while this host is in a cluster.
    var managerAddress: String? { membership?.managerAddress }

    /// This node's ID, while this host is in a cluster.
    var nodeID: String? { membership?.nodeID }

    /// Takes up the role ROOT/cluster records (at daemon start). A manager whose replica lost
    /// its state stays out of the consensus (it could vote twice in a term): it can only leave.
    func resume() async throws {
        guard let membership = try files.membership() else { return }
        self.membership = membership
        switch membership.role {
        case .manager:
            let store = try ClusterStore(path: files.managerStore)
            let member = RaftMember(id: membership.nodeID, address: membership.managerAddress)
            let holdsCluster = try store.cluster() != nil
            guard holdsCluster || membership.replicated != true else {
                try? store.close()
                logger.error(
                    "the cluster store \(files.managerStore) lost this manager's state: it stays out of the cluster; run atoll cluster leave --force here and atoll node rm --force \(membership.nodeID) on another manager, then join again"
                )
                return
            }
            // A cluster made before its managers were replicated gets its log now.
            if holdsCluster { try store.bootstrapLog(member: member) }
            let credentials = try renewedAtStart(try files.credentials(), membership, store)
            try await startConsensus(
                store: store, member: member, credentials: credentials,
                listen: membership.listenAddress ?? membership.managerAddress)
            // Joined, but not admitted before the daemon stopped: ask again, in the background.
            if let raft = consensus?.raft, await !raft.status.members.contains(where: { $0.id == member.id }) {
                admissionTask = Task { [weak self] in
                    do { try await self?.requestAdmission(membership, deadline: nil) } catch {
                        Logger(label: "atoll.cluster").error("this manager was not admitted to the consensus: \(error)")
                    }
                }
            }
        case .worker:
            startAgent(membership)
        }
    }

    // MARK: - Init, join, leave

    func initialize(_ request: Atoll_Cluster_V1_InitRequest) async throws -> Atoll_Cluster_V1_InitResponse {
        try refuseIfMember()
        let advertise = request.advertiseAddr.isEmpty ? try Self.defaultAdvertiseAddress() : request.advertiseAddr
        let (host, port) = try ClusterTLS.hostAndPort(advertise)
        var listen = request.listenAddr.isEmpty ? "0.0.0.0:\(port)" : request.listenAddr
        if !listen.contains(":") { listen += ":\(port)" }
        _ = try ClusterTLS.hostAndPort(listen)
        let membershipDraft = ClusterMembership(
            clusterID: "", nodeID: "", role: .manager, managerAddress: Self.join(host, port), listenAddress: listen)
        let key = KeyPair.generate()
        changing = true
        defer { changing = false }
        do {
            let (manager, certificate) = try await BlockingWork.run { [files, description] in
                let (manager, certificate) = try Manager.create(
                    storePath: files.managerStore, description: description, address: host,
                    managerAddress: membershipDraft.managerAddress,
                    certificateAddresses: self.certificateAddresses(membershipDraft), key: key)
                try manager.store.bootstrapLog(
                    member: RaftMember(id: manager.nodeID, address: membershipDraft.managerAddress))
                return (manager, certificate)
            }
            var membership = membershipDraft
            membership.clusterID = manager.clusterID
            membership.nodeID = manager.nodeID
            let adminDirectory = request.adminDir.isEmpty ? "\(files.directory)/admin" : request.adminDir
            membership.adminDirectory = adminDirectory
            membership.replicated = true
            let credentials = NodeCredentials(key: key, certificate: certificate, roots: [manager.ca.certificate])
            try files.save(membership, credentials)
            try writeAdminBundle(ca: manager.ca, clusterID: manager.clusterID, to: adminDirectory)
            self.membership = membership
            try await startConsensus(
                store: manager.store, member: RaftMember(id: manager.nodeID, address: membership.managerAddress),
                credentials: credentials, listen: listen)
            let tokens = try manager.tokens()
            var response = Atoll_Cluster_V1_InitResponse()
            response.clusterID = manager.clusterID
            response.nodeID = manager.nodeID
            response.workerToken = tokens.worker
            response.managerToken = tokens.manager
            response.adminDir = adminDirectory
            response.managerAddr = membership.managerAddress
            logger.info("initialized cluster \(manager.clusterID); this node (\(manager.nodeID)) is its manager")
            return response
        } catch {
            await stopRole()
            membership = nil
            // Not another cluster's state that was there before (Manager.create refuses it).
            if (error as? AtollError)?.code != .alreadyExists { try? files.remove() }
            throw error
        }
    }

    func join(_ request: Atoll_Cluster_V1_JoinRequest) async throws -> Atoll_Cluster_V1_JoinResponse {
        try refuseIfMember()
        changing = true
        defer { changing = false }
        let token = try JoinToken(parsing: request.token)
        let (managerHost, _) = try ClusterTLS.hostAndPort(request.managerAddr)
        // Should the token make this node a manager, this is where it serves the cluster port.
        var listen = request.listenAddr.isEmpty ? "0.0.0.0:\(ClusterTLS.defaultPort)" : request.listenAddr
        if !listen.contains(":") { listen += ":\(ClusterTLS.defaultPort)" }
        let listenPort = try ClusterTLS.hostAndPort(listen).1
        let ownAddress = try Self.advertisedIP(request.advertiseAddr, toward: managerHost)
        let (security, pinned) = try ClusterTLS.joiningSecurity(pinning: token.caFingerprint)
        let key = KeyPair.generate()
        var issue = Atoll_Cluster_V1_IssueNodeCertificateRequest()
        issue.token = request.token
        issue.csrPem = try key.certificateSigningRequest(commonName: description.hostname)
        issue.description_p = description.message
        issue.advertiseAddr = request.advertiseAddr
        issue.managerAddr = ownAddress.map { Self.join($0, listenPort) } ?? ""
        let transport = try HTTP2ClientTransport.Posix(
            target: try ClusterTLS.target(request.managerAddr), transportSecurity: security)
        let response: Atoll_Cluster_V1_IssueNodeCertificateResponse
        do {
            response = try await withGRPCClient(transport: transport) { client in
                try await Atoll_Cluster_V1_CA.Client(wrapping: client).issueNodeCertificate(
                    issue, options: .within(seconds: 20))
            }
        } catch {
            guard let failure = error as? RPCError else { throw error }
            // Not rethrown as is: its metadata is the manager's response's, not ours to send.
            guard [.unavailable, .deadlineExceeded].contains(failure.code) else {
                throw AtollError(AtollError.Code(failure.code), failure.message)
            }
            throw AtollError(
                .unavailable,
                pinned.value.withLock { $0 } == nil
                    ? "cannot join through \(request.managerAddr): it cannot be reached, or it is not a manager of the cluster the token names (no certificate with the token's CA fingerprint)"
                    : "cannot join through \(request.managerAddr): \(failure.message)")
        }
        let ca = try Certificate(pemEncoded: response.caCertificatePem)
        let certificate = try Certificate(pemEncoded: response.certificatePem)
        guard try CertificateAuthorityCheck.fingerprint(of: ca) == token.caFingerprint,
            try CertificateAuthorityCheck(certificate: ca).validates(certificate),
            certificate.publicKey == Certificate.PublicKey(key.privateKey.publicKey)
        else {
            throw AtollError(.permissionDenied, "the manager answered with certificates that do not match the token")
        }
        let credentials = NodeCredentials(key: key, certificate: certificate, roots: [ca])
        if response.role == NodeRole.manager.rawValue {
            var membership = ClusterMembership(
                clusterID: response.clusterID, nodeID: response.nodeID, role: .manager,
                managerAddress: issue.managerAddr, listenAddress: listen, managers: [request.managerAddr])
            let store: ClusterStore
            // The store fills in from the leader's log; nothing of another cluster's may stay.
            try FileSystem.removeTree((files.managerStore as NSString).deletingLastPathComponent)
            try files.save(membership, credentials)
            self.membership = membership
            do {
                // Serving first, then admitted: the leader counts this manager only once it answers.
                store = try ClusterStore(path: files.managerStore)
                try await startConsensus(
                    store: store, member: RaftMember(id: response.nodeID, address: issue.managerAddr),
                    credentials: credentials, listen: listen)
                try await requestAdmission(membership, deadline: .seconds(20))
            } catch {
                await stopRole()
                throw AtollError(
                    .unavailable,
                    "joined cluster \(response.clusterID) as manager \(response.nodeID), but cannot take part: \(error). Run atoll cluster leave --force here, and atoll node rm --force \(response.nodeID) on a manager"
                )
            }
            try await awaitReplica(store)
            membership.replicated = true
            try files.saveMembership(membership)
            self.membership = membership
        } else {
            let membership = ClusterMembership(
                clusterID: response.clusterID, nodeID: response.nodeID, role: .worker,
                managerAddress: request.managerAddr)
            try files.save(membership, credentials)
            self.membership = membership
            startAgent(membership)
        }
        logger.info("joined cluster \(response.clusterID) as node \(response.nodeID) (\(response.role))")
        var answer = Atoll_Cluster_V1_JoinResponse()
        answer.clusterID = response.clusterID
        answer.nodeID = response.nodeID
        answer.role = response.role
        return answer
    }

    func leave(force: Bool) async throws {
        guard !changing else {
            throw AtollError.failedPrecondition("this node is already joining, initializing or leaving a cluster")
        }
        guard let membership else {
            throw AtollError.failedPrecondition("this node is not part of a cluster")
        }
        changing = true
        defer { changing = false }
        if membership.role == .manager {
            let others = (await consensus?.raft.status.members ?? []).filter { $0.id != membership.nodeID }
            guard force else {
                throw AtollError.failedPrecondition(
                    others.isEmpty
                        ? "this node is the cluster's only manager: leaving ends the cluster and loses its state (use --force)"
                        : "this node is one of the cluster's \(others.count + 1) managers: leaving takes it out of them (use --force)"
                )
            }
            try await leaveManagers(membership)
        }
        await stopRole()
        try files.remove()
        self.membership = nil
        logger.info("left cluster \(membership.clusterID)")
    }

    func info() async -> Atoll_Cluster_V1_InfoResponse {
        var response = Atoll_Cluster_V1_InfoResponse()
        guard let membership else {
            response.state = "inactive"
            return response
        }
        response.clusterID = membership.clusterID
        response.nodeID = membership.nodeID
        response.role = membership.role.rawValue
        response.managerAddr = membership.managerAddress
        if let status = await consensus?.raft.status {
            response.connected = status.leader != nil
            response.managers = Self.managerAddresses(status)
        } else {
            response.connected = agent?.connected ?? false
            response.managers = agent?.managers ?? membership.managerCandidates
        }
        if let removal = agent?.removal {
            response.state = "removed: \(removal)"
        } else {
            response.state = response.connected ? "active" : "pending"
        }
        if let certificate = try? files.credentials().certificate {
            response.certificateExpiry = Int64(certificate.notValidAfter.timeIntervalSince1970)
        }
        return response
    }

    /// The managers' addresses, the leader's first.
    static func managerAddresses(_ status: RaftStatus) -> [String] {
        let leader = status.leader.map { [$0.address] } ?? []
        return leader + status.members.map(\.address).filter { !leader.contains($0) }
    }

    func shutdown() async {
        await stopRole()
    }

    // MARK: - Roles

    /// Stops everything this node runs for the cluster. Everything is taken out of the actor
    /// before the first await, so that nothing started meanwhile is dropped unstopped.
    private func stopRole() async {
        let (server, serving, consensus) = (self.server, self.serving, self.consensus)
        let tasks = [statusTask, bundleTask, agentTask, admissionTask].compactMap { $0 } + leaderTasks
        self.server = nil
        self.serving = nil
        self.consensus = nil
        (statusTask, bundleTask, agentTask, admissionTask) = (nil, nil, nil, nil)
        leaderTasks = []
        served.value.withLock { $0 = nil }
        running = nil
        agent = nil
        for task in tasks { task.cancel() }
        server?.beginGracefulShutdown()
        if let consensus {
            // No write may reach the file past the consensus from now on.
            consensus.store.replicate(through: ClosedReplicator())
            await consensus.raft.stop()
        }
        for task in tasks { await task.value }
        await serving?.value
        // A port restarted meanwhile (upkeep, a renewal) goes too.
        if let late = self.server {
            late.beginGracefulShutdown()
            self.server = nil
        }
        if let consensus {
            consensus.transport.close()
            try? consensus.store.close()
        }
    }

    private func refuseIfMember() throws {
        if changing {
            throw AtollError.failedPrecondition("this node is already joining, initializing or leaving a cluster")
        }
        if let membership {
            throw AtollError.alreadyExists(
                "this node is already part of cluster \(membership.clusterID) (as a \(membership.role.rawValue)): atoll cluster leave first"
            )
        }
    }

    /// Sends a call to the leader with this manager's certificate; its errors come back as
    /// this node's own (an RPCError's metadata is the leader's response's, not ours to send).
    static func forward<Response: Sendable>(
        to address: String, _ credentials: NodeCredentials,
        _ call: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Response
    ) async throws -> Response {
        // The leader's port restarts when its certificate changes (a renewal, a CA rotation): a
        // call that could not even connect is tried again for a few seconds (it was never sent).
        var attempts = 0
        while true {
            let transport = try HTTP2ClientTransport.Posix(
                target: try ClusterTLS.target(address), transportSecurity: try ClusterTLS.clientSecurity(credentials))
            do {
                return try await withGRPCClient(transport: transport) { client in try await call(client) }
            } catch {
                guard let failure = error as? RPCError else { throw error }
                attempts += 1
                if failure.code == .unavailable, failure.message.hasPrefix("Could not establish a connection"),
                    attempts < 20
                {
                    try await Task.sleep(for: .milliseconds(150))
                    continue
                }
                throw AtollError(AtollError.Code(failure.code), failure.message)
            }
        }
    }

    /// "HOST:PORT", bracketing an IPv6 host.
    static func join(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The IP a joining node gives: the one asked for, else its source address toward the manager.
    static func advertisedIP(_ requested: String, toward managerHost: String) throws -> String? {
        if !requested.isEmpty { return try ClusterTLS.hostAndPort(requested).0 }
        let octets = managerHost.split(separator: ".").compactMap { UInt8($0) }
        guard octets.count == 4, let source = SocketProbe.sourceAddress(toward: octets) else { return nil }
        return source.map(String.init).joined(separator: ".")
    }

    /// The names a manager's certificate carries: its advertised and listen addresses, loopback
    /// and the host name.
    nonisolated func certificateAddresses(_ membership: ClusterMembership) -> [String] {
        var addresses = [(try? ClusterTLS.hostAndPort(membership.managerAddress))?.0]
        if let listen = membership.listenAddress { addresses.append((try? ClusterTLS.hostAndPort(listen))?.0) }
        var seen = Set<String>()
        // The host name only if it is a DNS name a certificate can carry.
        let hostname = description.hostname
        let labels = hostname.split(separator: ".", omittingEmptySubsequences: false)
        let usable =
            hostname.contains(where: \.isLetter)
            && labels.allSatisfy { label in
                !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                    && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
            }
        return (addresses.compactMap { $0 } + ["127.0.0.1", "::1", "localhost"] + (usable ? [hostname] : [])).filter {
            !["0.0.0.0", "::"].contains($0) && seen.insert($0).inserted
        }
    }

    /// The address of the default route's interface, for a manager told no --advertise-addr.
    static func defaultAdvertiseAddress() throws -> String {
        guard let bytes = SocketProbe.sourceAddress(toward: [192, 0, 2, 1]) else {
            throw AtollError.invalidArgument("this host has no default route: give --advertise-addr IP[:PORT]")
        }
        return bytes.map(String.init).joined(separator: ".") + ":\(ClusterTLS.defaultPort)"
    }

}
