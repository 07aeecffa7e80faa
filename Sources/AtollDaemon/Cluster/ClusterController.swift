import AtollAPI
import AtollClient
import AtollClusterPKI
import AtollClusterStore
import AtollCore
import AtollEngine
import AtollManager
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Synchronization
import X509

/// This host's part in a cluster: nothing, a manager (its store, health loop and the cluster
/// port), or a worker (its agent). Init, join and leave move between them; at start, atolld
/// resumes what ROOT/cluster says.
actor ClusterController {
    let files: ClusterFiles
    let description: NodeDescription
    private var membership: ClusterMembership?
    private var running: Manager?
    private var server: GRPCServer<HTTP2ServerTransport.Posix>?
    /// The credentials the cluster port serves with (kept, so that upkeep reads no files).
    private var served: NodeCredentials?
    private var tasks: [Task<Void, Never>] = []
    private var agent: Agent?
    /// Set while init, join or leave runs: the actor is reentrant across their awaits.
    private var changing = false
    private let logger = Logger(label: "atoll.cluster")

    init(root: String, host: HostFacts) {
        files = ClusterFiles(root: root)
        description = NodeDescription(
            hostname: host.hostname, engineVersion: AtollVersion.version, os: "linux",
            architecture: host.architecture, cpus: host.cpus, memoryBytes: host.memoryBytes)
    }

    /// The manager, for the cluster services.
    func manager() throws -> Manager {
        guard let running else {
            throw AtollError.failedPrecondition(
                membership == nil
                    ? "this node is not part of a cluster: atoll cluster init or atoll cluster join"
                    : "this node is not a cluster manager: manage the cluster on a manager (atoll -H tcp://MANAGER:PORT --tls-dir DIR)"
            )
        }
        return running
    }

    /// The address nodes join through, while this host is in a cluster.
    var managerAddress: String? { membership?.managerAddress }

    /// Takes up the role ROOT/cluster records (at daemon start).
    func resume() async throws {
        guard let membership = try files.membership() else { return }
        self.membership = membership
        var credentials = try files.credentials()
        switch membership.role {
        case .manager:
            let manager = try Manager(storePath: files.managerStore, nodeID: membership.nodeID)
            if Self.needsNewCertificate(credentials.certificate, manager) {
                credentials = try refreshedCredentials(manager, credentials, membership)
            }
            try await startManager(manager, credentials, listen: membership.listenAddress ?? membership.managerAddress)
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
            clusterID: "", nodeID: "", role: .manager,
            managerAddress: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)", listenAddress: listen)
        let key = KeyPair.generate()
        changing = true
        defer { changing = false }
        do {
            let (manager, certificate) = try await BlockingWork.run { [files, description] in
                try Manager.create(
                    storePath: files.managerStore, description: description, address: host,
                    certificateAddresses: self.certificateAddresses(membershipDraft), key: key)
            }
            var membership = membershipDraft
            membership.clusterID = manager.clusterID
            membership.nodeID = manager.nodeID
            let adminDirectory = request.adminDir.isEmpty ? "\(files.directory)/admin" : request.adminDir
            membership.adminDirectory = adminDirectory
            let credentials = NodeCredentials(key: key, certificate: certificate, roots: [manager.ca.certificate])
            try files.save(membership, credentials)
            try writeAdminBundle(manager, to: adminDirectory)
            try await startManager(manager, credentials, listen: listen)
            self.membership = membership
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
        _ = try ClusterTLS.hostAndPort(request.managerAddr)
        let (security, pinned) = try ClusterTLS.joiningSecurity(pinning: token.caFingerprint)
        let key = KeyPair.generate()
        var issue = Atoll_Cluster_V1_IssueNodeCertificateRequest()
        issue.token = request.token
        issue.csrPem = try key.certificateSigningRequest(commonName: description.hostname)
        issue.description_p = description.message
        issue.advertiseAddr = request.advertiseAddr
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
        let membership = ClusterMembership(
            clusterID: response.clusterID, nodeID: response.nodeID, role: .worker, managerAddress: request.managerAddr)
        try files.save(membership, NodeCredentials(key: key, certificate: certificate, roots: [ca]))
        self.membership = membership
        startAgent(membership)
        logger.info("joined cluster \(response.clusterID) as node \(response.nodeID) (\(response.role))")
        var answer = Atoll_Cluster_V1_JoinResponse()
        answer.clusterID = response.clusterID
        answer.nodeID = response.nodeID
        answer.role = response.role
        return answer
    }

    /// `atoll cluster ca --rotate`: starts the rotation; the manager's upkeep loop finishes it.
    func rotateCA() async throws {
        let manager = try manager()
        try await BlockingWork.run { try manager.rotateCA() }
    }

    /// The manager's upkeep, every half second: ends a CA rotation whose nodes have all renewed,
    /// and gives the manager a new certificate (and the port with it) when its own is not from
    /// the cluster's CA (after a rotation) or has a third of its life left.
    private func upkeep(_ manager: Manager) async {
        while !Task.isCancelled {
            do {
                if manager.pendingCA != nil {
                    _ = try await BlockingWork.run { try manager.completeRotationIfRenewed() }
                }
                if running === manager, let membership, let credentials = served,
                    Self.needsNewCertificate(credentials.certificate, manager)
                {
                    let refreshed = try refreshedCredentials(manager, credentials, membership)
                    try await restartPort(manager, refreshed, membership)
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
        return !manager.ca.validates(certificate) || certificate.notValidAfter.timeIntervalSinceNow < lifetime / 3
    }

    /// A new certificate from the CA for the manager, the roots it trusts, and (after a
    /// rotation) the admin bundle; saved before anything uses them.
    private func refreshedCredentials(
        _ manager: Manager, _ credentials: NodeCredentials, _ membership: ClusterMembership
    ) throws -> NodeCredentials {
        var refreshed = credentials
        let rotated = !manager.ca.validates(credentials.certificate)
        refreshed.certificate = try manager.reissueOwnCertificate(
            key: credentials.key, addresses: certificateAddresses(membership))
        refreshed.roots = manager.trustedRoots
        try files.save(membership, refreshed)
        if rotated, let adminDirectory = membership.adminDirectory { try writeAdminBundle(manager, to: adminDirectory) }
        logger.info("the manager's certificate is renewed (CA \(manager.ca.fingerprint))")
        return refreshed
    }

    /// Serves the cluster port again with new credentials (nodes reconnect within a second).
    private func restartPort(_ manager: Manager, _ credentials: NodeCredentials, _ membership: ClusterMembership)
        async throws
    {
        guard running === manager, let server else { return }
        server.beginGracefulShutdown()
        let (serving, rest) = (tasks.first, Array(tasks.dropFirst()))
        await serving?.value
        guard running === manager, !Task.isCancelled else { return }
        tasks = rest
        try await startPort(manager, credentials, listen: membership.listenAddress ?? membership.managerAddress)
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
        if membership.role == .manager && !force {
            throw AtollError.failedPrecondition(
                "this node is the cluster's only manager: leaving ends the cluster and loses its state (use --force)")
        }
        await stopRole()
        try files.remove()
        self.membership = nil
        logger.info("left cluster \(membership.clusterID)")
    }

    func info() -> Atoll_Cluster_V1_InfoResponse {
        var response = Atoll_Cluster_V1_InfoResponse()
        guard let membership else {
            response.state = "inactive"
            return response
        }
        response.clusterID = membership.clusterID
        response.nodeID = membership.nodeID
        response.role = membership.role.rawValue
        response.managerAddr = membership.managerAddress
        response.connected = running != nil || (agent?.connected ?? false)
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

    func shutdown() async {
        await stopRole()
    }

    // MARK: - Roles

    /// The cluster port, the health loop and the upkeep loop.
    private func startManager(_ manager: Manager, _ credentials: NodeCredentials, listen: String) async throws {
        try await startPort(manager, credentials, listen: listen)
        running = manager
        tasks += [Task { await manager.run() }, Task { await self.upkeep(manager) }]
    }

    /// Serves CA, Dispatcher and Control on the cluster port; the serving task is `tasks[0]`.
    private func startPort(_ manager: Manager, _ credentials: NodeCredentials, listen: String) async throws {
        let (host, port) = try ClusterTLS.hostAndPort(listen)
        let transport = HTTP2ServerTransport.Posix(
            address: host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port),
            transportSecurity: try ClusterTLS.serverSecurity(
                credentials,
                authorities: { manager.trustedRoots.compactMap { try? CertificateAuthorityCheck(certificate: $0) } }))
        let server = GRPCServer(
            transport: transport,
            services: [
                CAService(cluster: self), DispatcherService(cluster: self), ControlService(cluster: self, local: false),
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
        served = credentials
        tasks.insert(serving, at: 0)
        logger.info("cluster manager serving on \(listen) (mutual TLS)")
    }

    private func startAgent(_ membership: ClusterMembership) {
        let agent = Agent(membership: membership, files: files, description: description)
        self.agent = agent
        tasks = [Task { await agent.run() }]
    }

    /// Stops the manager's port and loops or the agent. Everything is taken out of the actor
    /// before the first await, so that nothing started meanwhile is dropped unstopped.
    private func stopRole() async {
        let (server, tasks) = (self.server, self.tasks)
        self.server = nil
        self.tasks = []
        served = nil
        running = nil
        agent = nil
        server?.beginGracefulShutdown()
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
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
    private func writeAdminBundle(_ manager: Manager, to directory: String) throws {
        let key = KeyPair.generate()
        let certificate = try manager.issueAdminCertificate(key: key)
        try Syscall.mkdirAll(directory, mode: 0o700)
        try FileSystem.writeFileAtomically("\(directory)/key.pem", Array(key.pem.utf8), mode: 0o600)
        try FileSystem.writeFileAtomically(
            "\(directory)/cert.pem", Array(try certificate.serializeAsPEM().pemString.utf8), mode: 0o644)
        try FileSystem.writeFileAtomically("\(directory)/ca.pem", Array(manager.ca.certificatePEM.utf8), mode: 0o644)
    }
}
