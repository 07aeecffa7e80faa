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
    private var membership: ClusterMembership?
    /// A manager's consensus: its store and Raft server.
    private var consensus: Consensus?
    /// The manager, while this node leads.
    private var running: Manager?
    private var leaderTasks: [Task<Void, Never>] = []
    private var server: GRPCServer<HTTP2ServerTransport.Posix>?
    private var serving: Task<Void, Never>?
    private var statusTask: Task<Void, Never>?
    private var bundleTask: Task<Void, Never>?
    /// The credentials the cluster port serves with (kept, so that upkeep reads no files; the
    /// consensus transport connects with them).
    private let served = ServedCredentials()
    private var agent: Agent?
    private var agentTask: Task<Void, Never>?
    /// Set while init, join or leave runs: the actor is reentrant across their awaits.
    private var changing = false
    private let logger = Logger(label: "atoll.cluster")

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

    /// Where to answer a cluster call from: here when this node leads, else the leader.
    func route() async throws -> Route {
        if let running { return .local(running) }
        guard let membership else { throw Self.notMember }
        guard membership.role == .manager, let consensus else { throw Self.notManager }
        // An election takes a second or two: a call that arrives meanwhile waits for it.
        var status = await consensus.raft.status
        for _ in 0..<50 where status.leader == nil {
            try await Task.sleep(for: .milliseconds(100))
            status = await consensus.raft.status
        }
        guard let leader = status.leader, let credentials = served.towardPeers(consensus.roots) else {
            throw AtollError(
                .unavailable,
                "the cluster has no leader: an election is under way, or fewer than a majority of its managers are up")
        }
        guard leader.id != membership.nodeID else {
            throw AtollError(.unavailable, "this manager is taking over as the leader: retry in a moment")
        }
        return .leader(address: leader.address, credentials: credentials)
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

    /// Takes up the role ROOT/cluster records (at daemon start).
    func resume() async throws {
        guard let membership = try files.membership() else { return }
        self.membership = membership
        switch membership.role {
        case .manager:
            let store = try ClusterStore(path: files.managerStore)
            let member = RaftMember(id: membership.nodeID, address: membership.managerAddress)
            // A cluster made before its managers were replicated gets its log now.
            if try store.cluster() != nil { try store.bootstrapLog(member: member) }
            try await startConsensus(
                store: store, member: member, credentials: try files.credentials(),
                listen: membership.listenAddress ?? membership.managerAddress)
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
            let membership = ClusterMembership(
                clusterID: response.clusterID, nodeID: response.nodeID, role: .manager,
                managerAddress: issue.managerAddr, listenAddress: listen, managers: [request.managerAddr])
            let store: ClusterStore
            // The store fills in from the leader's log; nothing of another cluster's may stay.
            try FileSystem.removeTree((files.managerStore as NSString).deletingLastPathComponent)
            try files.save(membership, credentials)
            self.membership = membership
            do {
                store = try ClusterStore(path: files.managerStore)
                try await startConsensus(
                    store: store, member: RaftMember(id: response.nodeID, address: issue.managerAddr),
                    credentials: credentials, listen: listen)
            } catch {
                await stopRole()
                throw AtollError(
                    .unavailable,
                    "joined cluster \(response.clusterID) as manager \(response.nodeID), but cannot take part: \(error). Run atoll cluster leave --force here, and atoll node rm --force \(response.nodeID) on a manager"
                )
            }
            try await awaitReplica(store)
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

    /// Waits until a manager that just joined holds the cluster's state and knows its leader,
    /// so that it answers as soon as `join` returns.
    private func awaitReplica(_ store: ClusterStore) async throws {
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

    /// Adds a node that joined with the manager token to the managers' consensus.
    func addManager(id: String, address: String) async throws {
        guard let consensus, running != nil else { throw AtollError(.unavailable, "this manager does not lead") }
        try await consensus.raft.addMember(RaftMember(id: id, address: address))
        logger.info("manager \(id) at \(address) joins the managers' consensus")
    }

    /// Takes a manager out of the managers' consensus (before its node is removed).
    func removeManager(id: String) async throws {
        guard let consensus, running != nil else { throw AtollError(.unavailable, "this manager does not lead") }
        guard await consensus.raft.status.members.contains(where: { $0.id == id }) else { return }
        do {
            try await consensus.raft.removeMember(id: id)
        } catch {
            throw RaftReplicator.storeError(error)
        }
        logger.info("manager \(id) left the managers' consensus")
    }

    /// The manager's upkeep, every half second while it leads: ends a CA rotation whose nodes have
    /// all renewed, and gives the manager a new certificate (and the port with it) when its own is
    /// not from the cluster's CA (after a rotation) or has a third of its life left.
    private func upkeep(_ manager: Manager) async {
        while !Task.isCancelled {
            do {
                if manager.pendingCA != nil {
                    _ = try await BlockingWork.run { try manager.completeRotationIfRenewed() }
                }
                if running === manager, let membership, let credentials = served.value.withLock({ $0 }),
                    Self.needsNewCertificate(credentials.certificate, manager)
                {
                    let refreshed = try await refreshedCredentials(manager, credentials, membership)
                    try await restartPort(refreshed)
                }
            } catch {
                logger.error("cluster upkeep failed (tried again shortly): \(error)")
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Whether the manager's own certificate must be replaced: not from the CA (a rotation
    /// ended), or a third of its life left.
    static func needsNewCertificate(_ certificate: Certificate, _ manager: Manager) -> Bool {
        let lifetime = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        // A manager that takes over mid-rotation may hold one of the next CA's already: it stays.
        return manager.issuer(of: certificate) == nil || certificate.notValidAfter.timeIntervalSinceNow < lifetime / 3
    }

    /// A new certificate from the CA for the manager, the roots it trusts, and (after a
    /// rotation) the admin bundle; saved before anything uses them.
    private func refreshedCredentials(
        _ manager: Manager, _ credentials: NodeCredentials, _ membership: ClusterMembership
    ) async throws -> NodeCredentials {
        var refreshed = credentials
        let addresses = certificateAddresses(membership)
        refreshed.certificate = try await BlockingWork.run {
            try manager.reissueOwnCertificate(key: credentials.key, addresses: addresses)
        }
        refreshed.roots = manager.trustedRoots
        try files.save(membership, refreshed)
        logger.info("the manager's certificate is renewed (CA \(manager.ca.fingerprint))")
        return refreshed
    }

    /// Serves the cluster port again with new credentials (nodes reconnect within a second).
    private func restartPort(_ credentials: NodeCredentials) async throws {
        guard let membership, let server, let consensus else { return }
        server.beginGracefulShutdown()
        let previous = serving
        self.server = nil
        serving = nil
        await previous?.value
        guard !Task.isCancelled, self.consensus != nil else { return }
        try await startPort(consensus, credentials, listen: membership.listenAddress ?? membership.managerAddress)
    }

    /// A non-leading manager's agent renewed its certificate: the port serves the new one.
    private func agentRenewed(_ credentials: NodeCredentials) async {
        guard membership?.role == .manager else { return }
        do { try await restartPort(credentials) } catch {
            logger.error("cannot serve the cluster port with the renewed certificate: \(error)")
        }
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
            if !others.isEmpty { try await leaveManagers(membership) }
        }
        await stopRole()
        try files.remove()
        self.membership = nil
        logger.info("left cluster \(membership.clusterID)")
    }

    /// Takes this manager out of the cluster, through the leader: its node, then its place in
    /// the consensus (so that the others' quorum no longer counts it).
    private func leaveManagers(_ membership: ClusterMembership) async throws {
        switch try await route() {
        case .local(let manager):
            try await BlockingWork.run { try manager.removeOwnNode() }
            try await removeManager(id: membership.nodeID)
        case .leader(let address, let credentials):
            var removal = Atoll_Cluster_V1_RemoveNodeRequest()
            removal.node = membership.nodeID
            removal.force = true
            let request = removal
            _ = try await Self.forward(to: address, credentials) { client in
                try await Atoll_Cluster_V1_Control.Client(wrapping: client).removeNode(
                    request, options: .within(seconds: 20))
            }
        }
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

    /// A manager's consensus: the Raft server over the store (whose writes go through it), the
    /// cluster port, and a loop that follows who leads.
    private func startConsensus(
        store: ClusterStore, member: RaftMember, credentials: NodeCredentials, listen: String
    ) async throws {
        let (served, roots) = (self.served, RootsCache(store: store))
        let transport = GRPCRaftTransport(credentials: { served.towardPeers(roots) })
        let raft = RaftNode(self: member, storage: store, transport: transport, logger: Logger(label: "atoll.raft"))
        store.replicate(through: RaftReplicator(raft))
        let consensus = Consensus(store: store, raft: raft, transport: transport, roots: roots)
        self.consensus = consensus
        try await startPort(consensus, credentials, listen: listen)
        try await raft.start()
        let updates = await raft.statusChanges()
        statusTask = Task { [weak self] in
            for await status in updates {
                guard let self else { return }
                await self.follow(status, of: raft)
            }
        }
        if let directory = membership?.adminDirectory {
            let changes = store.events()
            bundleTask = Task { [weak self] in
                for await change in changes where change.kind == .cluster {
                    await self?.refreshAdminBundle(store, directory)
                }
            }
        }
    }

    /// Rewrites the admin bundle when the cluster's CA is no longer the one it holds (a rotation
    /// completed, on whichever manager led it): any manager holds the CA, replicated.
    private func refreshAdminBundle(_ store: ClusterStore, _ directory: String) async {
        do {
            guard let cluster = try await BlockingWork.run({ try store.cluster() }), cluster.pendingCAKeyPEM.isEmpty
            else { return }
            let held = (try? FileSystem.readFile("\(directory)/ca.pem")).flatMap {
                try? CertificateAuthority.fingerprint(ofPEM: String(decoding: $0, as: UTF8.self))
            }
            if held == (try CertificateAuthority.fingerprint(ofPEM: cluster.caCertificatePEM)) { return }
            let ca = try CertificateAuthority(certificatePEM: cluster.caCertificatePEM, keyPEM: cluster.caKeyPEM)
            try writeAdminBundle(ca: ca, clusterID: cluster.id, to: directory)
            logger.info("rewrote the admin bundle in \(directory) for the cluster's CA \(ca.fingerprint)")
        } catch {
            logger.error("cannot rewrite the admin bundle in \(directory): \(error)")
        }
    }

    /// Takes up or puts down the leader's work as the consensus changes hands.
    private func follow(_ status: RaftStatus, of raft: RaftNode) async {
        guard consensus?.raft === raft, let membership else { return }
        if status.role == .leader, running == nil {
            await lead(raft, membership)
        } else if status.role != .leader, running != nil {
            await stopLeading()
        }
        if running == nil, agent == nil, status.members.contains(where: { $0.id == membership.nodeID }) {
            startAgent(membership)
        }
    }

    /// This manager leads: once the log's earlier entries are applied here, the manager runs.
    private func lead(_ raft: RaftNode, _ membership: ClusterMembership) async {
        while consensus?.raft === raft, await raft.status.role == .leader {
            do {
                try await raft.barrier()
                let store = raft === consensus?.raft ? consensus?.store : nil
                guard let store else { return }
                let manager = try await BlockingWork.run { try Manager(store: store, nodeID: membership.nodeID) }
                stopAgent()
                running = manager
                leaderTasks = [Task { await manager.run() }, Task { await self.upkeep(manager) }]
                let term = await raft.status.term
                logger.info("this manager leads the cluster (term \(term))")
                return
            } catch {
                logger.warning("cannot take up the leader's work yet: \(error)")
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    private func stopLeading() async {
        let tasks = leaderTasks
        leaderTasks = []
        running = nil
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        logger.info("this manager no longer leads the cluster")
    }

    /// Serves CA, Dispatcher, Control and Raft on the cluster port.
    private func startPort(_ consensus: Consensus, _ credentials: NodeCredentials, listen: String) async throws {
        let (host, port) = try ClusterTLS.hostAndPort(listen)
        let roots = consensus.roots
        let fallback = credentials.roots
        let transport = HTTP2ServerTransport.Posix(
            address: host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port),
            transportSecurity: try ClusterTLS.serverSecurity(
                credentials,
                authorities: {
                    (roots.current() ?? fallback).compactMap { try? CertificateAuthorityCheck(certificate: $0) }
                }))
        let clusterID = membership?.clusterID ?? ""
        let server = GRPCServer(
            transport: transport,
            services: [
                CAService(cluster: self), DispatcherService(cluster: self), ControlService(cluster: self, local: false),
                RaftService(raft: consensus.raft, clusterID: clusterID),
            ])
        let logger = self.logger
        let failure = Mutex<(any Error)?>(nil)
        let serving = Task {
            do { try await server.serve() } catch {
                failure.withLock { $0 = error }
                logger.error("the cluster port stopped: \(error)")
            }
        }
        // The serving task may not have bound yet: ask until it has, or until it failed.
        var bound = false
        for _ in 0..<200 where !bound {
            if let error = failure.withLock({ $0 }) {
                throw AtollError(.unavailable, "cannot listen for the cluster on \(listen)", cause: error)
            }
            bound = (try? await server.listeningAddress) != nil
            if !bound { try? await Task.sleep(for: .milliseconds(25)) }
        }
        guard bound else {
            server.beginGracefulShutdown()
            serving.cancel()
            throw AtollError(.unavailable, "cannot listen for the cluster on \(listen): it did not bind within 5 s")
        }
        self.server = server
        self.serving = serving
        served.value.withLock { $0 = credentials }
        logger.info("cluster manager serving on \(listen) (mutual TLS)")
    }

    private func startAgent(_ membership: ClusterMembership) {
        let raft = consensus?.raft
        let agent = Agent(
            membership: membership, files: files, description: description,
            leaderHint: { await raft?.status.leader?.address },
            renewed: { [weak self] credentials in await self?.agentRenewed(credentials) })
        self.agent = agent
        agentTask = Task { await agent.run() }
    }

    private func stopAgent() {
        agentTask?.cancel()
        agentTask = nil
        agent = nil
    }

    /// Stops everything this node runs for the cluster. Everything is taken out of the actor
    /// before the first await, so that nothing started meanwhile is dropped unstopped.
    private func stopRole() async {
        let (server, serving, consensus, statusTask) = (self.server, self.serving, self.consensus, self.statusTask)
        bundleTask?.cancel()
        bundleTask = nil
        let tasks = leaderTasks + (agentTask.map { [$0] } ?? [])
        self.server = nil
        self.serving = nil
        self.consensus = nil
        self.statusTask = nil
        leaderTasks = []
        agentTask = nil
        served.value.withLock { $0 = nil }
        running = nil
        agent = nil
        statusTask?.cancel()
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        if let consensus {
            await consensus.raft.stop()
            consensus.transport.close()
            consensus.store.replicate(through: nil)
            try? consensus.store.close()
        }
        server?.beginGracefulShutdown()
        await serving?.value
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
        let transport = try HTTP2ClientTransport.Posix(
            target: try ClusterTLS.target(address), transportSecurity: try ClusterTLS.clientSecurity(credentials))
        do {
            return try await withGRPCClient(transport: transport) { client in try await call(client) }
        } catch {
            guard let failure = error as? RPCError else { throw error }
            throw AtollError(AtollError.Code(failure.code), failure.message)
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

    /// ca.pem, cert.pem and key.pem for `atoll --tls-dir`: an admin certificate of this cluster.
    private func writeAdminBundle(ca: CertificateAuthority, clusterID: String, to directory: String) throws {
        let key = KeyPair.generate()
        let certificate = try Manager.issueAdminCertificate(from: ca, clusterID: clusterID, key: key)
        try Syscall.mkdirAll(directory, mode: 0o700)
        try FileSystem.writeFileAtomically("\(directory)/key.pem", Array(key.pem.utf8), mode: 0o600)
        try FileSystem.writeFileAtomically(
            "\(directory)/cert.pem", Array(try certificate.serializeAsPEM().pemString.utf8), mode: 0o644)
        try FileSystem.writeFileAtomically("\(directory)/ca.pem", Array(ca.certificatePEM.utf8), mode: 0o644)
    }
}

/// The credentials a manager's cluster port serves with, shared with its consensus transport.
final class ServedCredentials: Sendable {
    let value = Mutex<NodeCredentials?>(nil)

    /// For calls to the other managers: this certificate, trusting the roots the replicated
    /// store names (both CAs during a rotation, whose managers may already serve the new one's).
    func towardPeers(_ roots: RootsCache) -> NodeCredentials? {
        guard var credentials = value.withLock({ $0 }) else { return nil }
        if let current = roots.current(), !current.isEmpty { credentials.roots = current }
        return credentials
    }
}
