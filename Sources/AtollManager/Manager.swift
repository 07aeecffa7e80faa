import AtollClusterPKI
import AtollClusterStore
import AtollCore
import Foundation
import Logging
import Synchronization
import X509

/// What a node says about itself when it joins and on its first heartbeat of a session.
public struct NodeDescription: Sendable, Equatable {
    public var hostname: String
    public var engineVersion: String
    public var os: String
    public var architecture: String
    public var cpus: Int
    public var memoryBytes: Int64

    public init(
        hostname: String, engineVersion: String, os: String, architecture: String, cpus: Int, memoryBytes: Int64
    ) {
        self.hostname = hostname
        self.engineVersion = engineVersion
        self.os = os
        self.architecture = architecture
        self.cpus = cpus
        self.memoryBytes = memoryBytes
    }

    func apply(to node: inout Node) {
        node.hostname = hostname
        node.engineVersion = engineVersion
        node.os = os
        node.architecture = architecture
        node.cpus = cpus
        node.memoryBytes = memoryBytes
    }

    init(of node: Node) {
        self.init(
            hostname: node.hostname, engineVersion: node.engineVersion, os: node.os,
            architecture: node.architecture, cpus: node.cpus, memoryBytes: node.memoryBytes)
    }
}

/// The manager: the cluster's CA and join tokens, node membership and health, over one store.
/// Transport-free: the gRPC services in atolld authenticate callers (mutual TLS) and call it.
public final class Manager: Sendable {
    public let store: ClusterStore
    /// This manager's own node.
    public let nodeID: String
    public let clusterID: String
    public let health = NodeHealth()
    /// The CA, and the next one while a rotation runs.
    private let authorities: Mutex<(current: CertificateAuthority, pending: CertificateAuthority?)>
    private let logger = Logger(label: "atoll.manager")
    /// The nodes as last written by this manager (the store's only writer), so that a
    /// heartbeat (every node, every few seconds) reads no database. Read through on a miss.
    private let nodeCache = Mutex<(nodes: [String: Node], removed: Set<String>)>(([:], []))
    /// How often nodes heartbeat (the cluster row's setting, read once).
    public let heartbeatPeriod: TimeInterval

    /// How many heartbeat periods a node may miss before it is marked down.
    public static let missedHeartbeats = 3.0
    /// How long node certificates last.
    public static let certificateValidity: TimeInterval = 90 * 86400

    /// Opens an existing cluster's store (ROOT/manager/cluster.db).
    public convenience init(storePath: String, nodeID: String) throws {
        try self.init(store: try ClusterStore(path: storePath), nodeID: nodeID)
    }

    /// A manager over a store already open (a replicated one: this server leads its cluster).
    public init(store: ClusterStore, nodeID: String) throws {
        self.store = store
        let storePath = store.path
        guard let cluster = try store.cluster() else {
            throw AtollError.failedPrecondition("\(storePath) holds no cluster: run atoll cluster init")
        }
        let current = try CertificateAuthority(certificatePEM: cluster.caCertificatePEM, keyPEM: cluster.caKeyPEM)
        let pending =
            cluster.pendingCACertificatePEM.isEmpty
            ? nil
            : try CertificateAuthority(certificatePEM: cluster.pendingCACertificatePEM, keyPEM: cluster.pendingCAKeyPEM)
        authorities = Mutex((current, pending))
        heartbeatPeriod = cluster.heartbeatPeriodSeconds > 0 ? cluster.heartbeatPeriodSeconds : 5
        clusterID = cluster.id
        self.nodeID = nodeID
        health.grace(try store.nodes().map(\.id))
    }

    /// A new cluster: its CA, join token secrets and store, and this host as its first node (a
    /// manager). Returns the manager and the certificate for `key`, this node's key.
    public static func create(
        storePath: String, description: NodeDescription, address: String, managerAddress: String,
        certificateAddresses: [String], key: KeyPair
    ) throws -> (Manager, Certificate) {
        if FileManager.default.fileExists(atPath: storePath) {
            throw AtollError.alreadyExists("this host already holds a cluster's state (\(storePath))")
        }
        let clusterID = NodeID.generate()
        let ca = try CertificateAuthority.create(clusterID: clusterID)
        let store = try ClusterStore(path: storePath)
        _ = try store.createCluster(
            ClusterInfo(
                id: clusterID, caCertificatePEM: ca.certificatePEM, caKeyPEM: ca.key.pem,
                workerTokenSecret: JoinToken.generateSecret(), managerTokenSecret: JoinToken.generateSecret()))
        let nodeID = NodeID.generate()
        let certificate = try ca.issue(
            publicKey: key.privateKey.publicKey,
            identity: CertificateIdentity(nodeID: nodeID, role: .manager, clusterID: clusterID),
            addresses: certificateAddresses, validity: certificateValidity)
        var node = Node(id: nodeID, role: .manager, hostname: description.hostname, address: address)
        description.apply(to: &node)
        node.managerAddress = managerAddress
        node.state = .ready
        node.certificateSerial = certificate.serialNumber.description
        node.certificateExpiry = certificate.notValidAfter
        node.certificateIssuer = ca.fingerprint
        _ = try store.createNode(node)
        return (try Manager(store: store, nodeID: nodeID), certificate)
    }

    /// The cluster's CA: what join tokens pin and what the manager's own certificate is from.
    public var ca: CertificateAuthority { authorities.withLock { $0.current } }
    /// The next CA, while a rotation runs.
    public var pendingCA: CertificateAuthority? { authorities.withLock { $0.pending } }
    /// The CA that signs renewals and admin certificates: the next one during a rotation.
    private var signer: CertificateAuthority { authorities.withLock { $0.pending ?? $0.current } }
    /// The roots a caller's certificate may chain to (both during a rotation).
    public var trustedRoots: [Certificate] {
        authorities.withLock { [$0.current.certificate] + ($0.pending.map { [$0.certificate] } ?? []) }
    }

    /// The roots as PEM, for heartbeat answers.
    private var trustedRootsPEM: [String] {
        authorities.withLock { [$0.current.certificatePEM] + ($0.pending.map { [$0.certificatePEM] } ?? []) }
    }

    /// A node, from the cache or the store.
    private func cachedNode(_ id: String) throws -> Node? {
        if let node = nodeCache.withLock({ $0.nodes[id] }) { return node }
        guard let node = try store.node(id) else { return nil }
        return remember(node)
    }

    /// Caches a node just read or written, unless it was removed meanwhile (IDs are never
    /// reused, so a removal is remembered for good and no late write brings the node back).
    private func remember(_ node: Node) -> Node? {
        nodeCache.withLock { cache in
            guard !cache.removed.contains(node.id) else { return nil }
            cache.nodes[node.id] = node
            return node
        }
    }

    /// Writes a node through the store and remembers the result.
    @discardableResult
    private func update(_ id: String, expectedVersion: Int64? = nil, _ change: (inout Node) throws -> Void) throws
        -> Node
    {
        do {
            let node = try store.updateNode(id, expectedVersion: expectedVersion, change)
            _ = remember(node)
            return node
        } catch {
            nodeCache.withLock { _ = $0.nodes.removeValue(forKey: id) }
            throw error
        }
    }

    // MARK: - Join tokens

    public func tokens() throws -> (worker: String, manager: String) {
        let cluster = try requireCluster()
        return (
            JoinToken(caFingerprint: ca.fingerprint, secret: cluster.workerTokenSecret).description,
            JoinToken(caFingerprint: ca.fingerprint, secret: cluster.managerTokenSecret).description
        )
    }

    /// Replaces a role's token secret: the old token stops working; nodes already in stay.
    public func rotateToken(_ role: NodeRole) throws {
        _ = try store.updateCluster { cluster in
            switch role {
            case .worker: cluster.workerTokenSecret = JoinToken.generateSecret()
            case .manager: cluster.managerTokenSecret = JoinToken.generateSecret()
            }
        }
        logger.info("rotated the \(role.rawValue) join token")
    }

    // MARK: - Certificates

    /// A node joins: the token names the role; its CSR gets a certificate naming a new node ID.
    /// A manager token's node also gives `managerAddress`, where it serves the cluster port; the
    /// caller then adds it to the managers' consensus (and removes the node if that fails).
    public func join(
        token text: String, csrPEM: String, description: NodeDescription, address: String,
        managerAddress: String = ""
    ) throws -> (Node, Certificate) {
        let token = try JoinToken(parsing: text)
        guard token.caFingerprint == ca.fingerprint else {
            throw AtollError(
                .permissionDenied,
                "the join token is for another cluster: its CA fingerprint does not match this cluster's")
        }
        guard pendingCA == nil else {
            throw AtollError(
                .unavailable, "a CA rotation is in progress: join when it completes (atoll cluster ca on a manager)")
        }
        let cluster = try requireCluster()
        let role: NodeRole
        if token.matches(secret: cluster.workerTokenSecret) {
            role = .worker
        } else if token.matches(secret: cluster.managerTokenSecret) {
            guard !managerAddress.isEmpty else {
                throw AtollError.invalidArgument(
                    "a node joining as a manager must give the address it serves the cluster port on: it could not tell its own IP toward this manager; join with --advertise-addr IP"
                )
            }
            role = .manager
        } else {
            throw AtollError(.permissionDenied, "invalid join token: it was rotated or mistyped")
        }
        let nodeID = NodeID.generate()
        let issuer = ca
        let certificate = try issuer.issue(
            csrPEM: csrPEM,
            identity: CertificateIdentity(
                nodeID: nodeID, role: role == .manager ? .manager : .worker, clusterID: clusterID),
            addresses: Self.certificateAddresses(address, role: role), validity: Self.certificateValidity)
        var node = Node(id: nodeID, role: role, hostname: description.hostname, address: address)
        node.managerAddress = managerAddress
        description.apply(to: &node)
        node.certificateSerial = certificate.serialNumber.description
        node.certificateExpiry = certificate.notValidAfter
        node.certificateIssuer = issuer.fingerprint
        let stored = try store.createNode(node)
        health.beat(nodeID)
        logger.info("node \(nodeID) (\(description.hostname), \(address)) joined as a \(role.rawValue)")
        return (stored, certificate)
    }

    /// A new certificate for a node that proves its current one.
    public func renew(_ identity: CertificateIdentity, csrPEM: String) throws -> Certificate {
        let node = try authorize(identity, roles: [.worker, .manager]).node
        guard let node else { throw AtollError(.permissionDenied, "only nodes renew certificates") }
        let role: ClusterRole = node.role == .manager ? .manager : .worker
        let issuer = signer
        let certificate = try issuer.issue(
            csrPEM: csrPEM, identity: CertificateIdentity(nodeID: node.id, role: role, clusterID: clusterID),
            addresses: Self.certificateAddresses(node.address, role: node.role), validity: Self.certificateValidity)
        // The issuer is recorded when the node presents the certificate (its heartbeat), not
        // here: a node that never stored this one must still be told to renew.
        _ = issuer
        try update(node.id) {
            $0.certificateSerial = certificate.serialNumber.description
            $0.certificateExpiry = certificate.notValidAfter
        }
        return certificate
    }

    /// The names a node's certificate carries: its address, and for a manager (which serves the
    /// cluster port, reached on its host too) loopback.
    static func certificateAddresses(_ address: String, role: NodeRole) -> [String] {
        role == .manager ? [address, "127.0.0.1", "::1", "localhost"].filter { !$0.isEmpty } : [address]
    }

    /// A certificate for an administrator's client (`atoll --tls-dir`): it can call Control.
    public func issueAdminCertificate(key: KeyPair, validity: TimeInterval = 365 * 86400) throws -> Certificate {
        try Self.issueAdminCertificate(from: ca, clusterID: clusterID, key: key, validity: validity)
    }

    /// An admin certificate from `ca` (any manager holds the CA, replicated with the cluster).
    public static func issueAdminCertificate(
        from ca: CertificateAuthority, clusterID: String, key: KeyPair, validity: TimeInterval = 365 * 86400
    ) throws -> Certificate {
        try ca.issue(
            publicKey: key.privateKey.publicKey,
            identity: CertificateIdentity(nodeID: "admin-" + NodeID.generate(), role: .admin, clusterID: clusterID),
            validity: validity)
    }

    /// This manager's own certificate again (at start, when it nears its end).
    /// `fromNextCA`: from the CA a rotation brings in (the leader's last step before it completes).
    public func reissueOwnCertificate(key: KeyPair, addresses: [String], fromNextCA: Bool = false) throws
        -> Certificate
    {
        let issuer = fromNextCA ? signer : ca
        let certificate = try issuer.issue(
            publicKey: key.privateKey.publicKey,
            identity: CertificateIdentity(nodeID: nodeID, role: .manager, clusterID: clusterID),
            addresses: addresses, validity: Self.certificateValidity)
        try update(nodeID) {
            $0.certificateSerial = certificate.serialNumber.description
            $0.certificateExpiry = certificate.notValidAfter
            $0.certificateIssuer = issuer.fingerprint
        }
        return certificate
    }

    /// Checks a caller's certificate identity: this cluster's, one of `roles`, and (for nodes)
    /// a node the store still has. Returns the node, nil for an admin.
    @discardableResult
    public func authorize(_ identity: CertificateIdentity?, roles: Set<ClusterRole>) throws -> (
        identity: CertificateIdentity, node: Node?
    ) {
        guard let identity else {
            throw AtollError(.permissionDenied, "a certificate of this cluster is required")
        }
        guard identity.clusterID == clusterID else {
            throw AtollError(.permissionDenied, "the certificate is for another cluster (\(identity.clusterID))")
        }
        guard roles.contains(identity.role) else {
            throw AtollError(
                .permissionDenied,
                "a \(identity.role.rawValue) certificate cannot call this: it needs \(roles.map(\.rawValue).sorted().joined(separator: " or "))"
            )
        }
        if identity.role == .admin { return (identity, nil) }
        guard let node = try cachedNode(identity.nodeID) else {
            throw AtollError(.permissionDenied, "node \(identity.nodeID) was removed from the cluster")
        }
        return (identity, node)
    }

    // MARK: - Heartbeats and health

    /// What a heartbeat answers: when to call again, whether to renew the certificate (it is
    /// not from the signing CA: a rotation runs), and the roots to trust for the manager.
    public struct HeartbeatAnswer: Sendable {
        public var period: TimeInterval
        public var renewCertificate: Bool
        /// PEM.
        public var trustedRoots: [String]
    }

    /// A node's heartbeat: it is ready (again), and described anew when it says so.
    /// `presentedCertificate` is the certificate the node's session was authenticated with:
    /// which CA signed it decides whether it must renew, and a rotation's progress.
    public func heartbeat(
        nodeID: String, description: NodeDescription?, address: String?, presentedCertificate: Certificate? = nil
    ) throws -> HeartbeatAnswer {
        health.beat(nodeID)
        guard let node = try cachedNode(nodeID) else {
            throw AtollError(.permissionDenied, "node \(nodeID) was removed from the cluster")
        }
        let describedAnew = description.map { $0 != NodeDescription(of: node) } ?? false
        let moved = address.map { !$0.isEmpty && $0 != node.address } ?? false
        let presentedIssuer =
            presentedCertificate.flatMap { issuerFingerprint(ofValidated: $0) } ?? node.certificateIssuer
        let reissued = presentedIssuer != node.certificateIssuer
        if node.state != .ready || describedAnew || moved || reissued {
            try update(nodeID) { node in
                if node.state != .ready {
                    self.logger.info("node \(nodeID) (\(node.hostname)) is ready")
                }
                node.state = .ready
                node.stateMessage = ""
                description?.apply(to: &node)
                if moved, let address { node.address = address }
                node.certificateIssuer = presentedIssuer
            }
        }
        return HeartbeatAnswer(
            period: heartbeatPeriod, renewCertificate: presentedIssuer != signer.fingerprint,
            trustedRoots: trustedRootsPEM)
    }

    // MARK: - CA rotation

    /// The CA (current or pending) that signed `certificate`, if either did and it is valid.
    public func issuer(of certificate: Certificate) -> CertificateAuthority? {
        let candidates = authorities.withLock { [$0.current, $0.pending].compactMap { $0 } }
        return candidates.first { $0.validates(certificate) }
    }

    /// Which CA signed a certificate the TLS handshake already validated against the trusted
    /// roots: told apart by its authority key identifier (both CAs have the same name), without
    /// checking a signature again on every heartbeat.
    func issuerFingerprint(ofValidated certificate: Certificate) -> String? {
        let candidates = authorities.withLock { [$0.current, $0.pending].compactMap { $0 } }
        if let key = (try? certificate.extensions.authorityKeyIdentifier)?.keyIdentifier {
            for ca in candidates where (try? ca.certificate.extensions.subjectKeyIdentifier)?.keyIdentifier == key {
                return ca.fingerprint
            }
        }
        return issuer(of: certificate)?.fingerprint
    }

    /// Starts a rotation: a new CA signs every renewal from now on, and nodes are told to renew.
    public func rotateCA() throws {
        let next = try CertificateAuthority.create(clusterID: clusterID)
        guard pendingCA == nil else {
            throw AtollError.failedPrecondition("a CA rotation is already in progress (atoll cluster ca)")
        }
        // The store's write decides (its row is the truth); the lock only swaps the value.
        _ = try store.updateCluster { cluster in
            guard cluster.pendingCACertificatePEM.isEmpty else {
                throw AtollError.failedPrecondition("a CA rotation is already in progress (atoll cluster ca)")
            }
            cluster.pendingCACertificatePEM = next.certificatePEM
            cluster.pendingCAKeyPEM = next.key.pem
        }
        authorities.withLock { $0.pending = next }
        logger.info("CA rotation started: nodes renew their certificates from the new CA \(next.fingerprint)")
    }

    /// How a rotation stands: nodes (other than this manager; workers that are down aside)
    /// holding a certificate of the new CA, of all of them; nil when none runs.
    public func rotationProgress() throws -> (renewed: Int, of: Int)? {
        guard let pending = pendingCA else { return nil }
        // Managers count even when down: one left with only the old CA's certificate could not
        // take part in the consensus again.
        let nodes = try store.nodes().filter { $0.id != nodeID && ($0.state != .down || $0.role == .manager) }
        return (nodes.filter { $0.certificateIssuer == pending.fingerprint }.count, nodes.count)
    }

    /// Ends a rotation whose nodes have all renewed: the new CA becomes the CA, and the old one
    /// is refused from then on. True when it did; the caller then gives the manager a
    /// certificate of the new CA.
    public func completeRotationIfRenewed() throws -> Bool {
        guard let progress = try rotationProgress(), progress.renewed == progress.of, let next = pendingCA else {
            return false
        }
        _ = try store.updateCluster { cluster in
            cluster.caCertificatePEM = next.certificatePEM
            cluster.caKeyPEM = next.key.pem
            cluster.pendingCACertificatePEM = ""
            cluster.pendingCAKeyPEM = ""
        }
        authorities.withLock { $0 = (next, nil) }
        logger.info("CA rotation complete: \(ca.fingerprint) is the cluster's CA")
        return true
    }

    /// Marks down the nodes (other than this manager) that missed their heartbeats. Returns
    /// their IDs. Only the silent ones are read from the store.
    @discardableResult
    public func markSilentNodesDown(now: Date = Date()) throws -> [String] {
        var marked: [String] = []
        var failure: (any Error)?
        for id in health.newlySilent(timeout: heartbeatPeriod * Self.missedHeartbeats, now: now) where id != nodeID {
            do {
                guard let node = try cachedNode(id), node.state == .ready || node.state == .unknown else { continue }
                try update(id) { node in
                    node.state = .down
                    node.stateMessage = "heartbeat failure"
                }
                marked.append(id)
                logger.warning("node \(id) missed \(Int(Self.missedHeartbeats)) heartbeats: marked down")
            } catch {
                health.unreport(id)  // tried again on the next check
                failure = error
            }
        }
        if let failure { throw failure }
        return marked
    }

    /// The health loop: checks twice a second until cancelled (a dead node is marked down at
    /// most half a second after its third missed heartbeat); this manager's own node is ready
    /// while it runs.
    /// Store writes wait for the managers' consensus, so they run off Swift's concurrency threads.
    public func run() async {
        _ = try? await BlockingWork.run {
            try self.update(self.nodeID) {
                $0.state = .ready
                $0.stateMessage = ""
            }
        }
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(500))
            guard !Task.isCancelled else { break }
            do { _ = try await BlockingWork.run { try self.markSilentNodesDown() } } catch {
                logger.error("checking node heartbeats failed: \(error)")
            }
        }
    }

    // MARK: - Nodes

    /// Nodes matching every filter (`key=value`: id (prefix), name (hostname), role, state,
    /// availability, label (`key` or `key=value`)).
    public func listNodes(filters: [String]) throws -> [Node] {
        let parsed = try filters.map { filter -> (String, String) in
            let parts = filter.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, ["id", "name", "role", "state", "availability", "label"].contains(parts[0]) else {
                throw AtollError.invalidArgument(
                    "invalid filter \"\(filter)\": want id=, name=, role=, state=, availability= or label=")
            }
            return (parts[0], parts[1])
        }
        return try store.nodes().filter { node in
            parsed.allSatisfy { key, value in
                switch key {
                case "id": node.id.hasPrefix(value)
                case "name": node.hostname == value
                case "role": node.role.rawValue == value
                case "state": node.state.rawValue == value
                case "availability": node.availability.rawValue == value
                default:
                    if let equals = value.firstIndex(of: "=") {
                        node.labels[String(value[..<equals])] == String(value[value.index(after: equals)...])
                    } else {
                        node.labels[value] != nil
                    }
                }
            }
        }
    }

    /// A node by ID, unique ID prefix or hostname; "self" is this manager.
    public func node(_ reference: String) throws -> Node {
        try store.resolveNode(reference == "self" ? nodeID : reference)
    }

    public func updateNode(
        _ reference: String, availability: NodeAvailability?, labelsToAdd: [String], labelsToRemove: [String]
    ) throws -> Node {
        let node = try node(reference)
        return try update(node.id, expectedVersion: node.version) { node in
            if let availability { node.availability = availability }
            for label in labelsToAdd {
                let parts = label.split(separator: "=", maxSplits: 1).map(String.init)
                guard let key = parts.first, !key.isEmpty else {
                    throw AtollError.invalidArgument("invalid label \"\(label)\": want KEY[=VALUE]")
                }
                node.labels[key] = parts.count == 2 ? parts[1] : ""
            }
            for key in labelsToRemove {
                guard node.labels.removeValue(forKey: key) != nil else {
                    throw AtollError.notFound("node \(node.hostname) has no label \"\(key)\"")
                }
            }
        }
    }

    /// Removes a node from the cluster: its certificate is refused from then on. A node that is
    /// not down needs `force`; this manager cannot be removed.
    public func removeNode(_ reference: String, force: Bool) throws {
        let node = try removableNode(reference, force: force)
        try remove(node)
    }

    /// The node `removeNode` would remove, or why it would not (for a manager, the caller takes
    /// it out of the consensus first).
    public func removableNode(_ reference: String, force: Bool) throws -> Node {
        let node = try node(reference)
        guard node.id != nodeID else {
            throw AtollError.failedPrecondition(
                "node \(node.hostname) leads the cluster and cannot remove itself: run atoll cluster leave --force on it"
            )
        }
        if node.state == .ready && !force {
            throw AtollError.failedPrecondition(
                "node \(node.hostname) (\(node.id)) is ready: stop it first or remove it with --force")
        }
        return node
    }

    /// This manager leaves the cluster: its node goes (the caller then takes it out of the
    /// consensus).
    public func removeOwnNode() throws {
        try remove(try node(nodeID))
    }

    private func remove(_ node: Node) throws {
        try store.removeNode(node.id, expectedVersion: node.version)
        nodeCache.withLock {
            $0.nodes.removeValue(forKey: node.id)
            $0.removed.insert(node.id)
        }
        health.forget(node.id)
        logger.info("node \(node.id) (\(node.hostname)) removed from the cluster")
    }

    private func requireCluster() throws -> ClusterInfo {
        guard let cluster = try store.cluster() else {
            throw AtollError.internalError("the cluster store lost its cluster row")
        }
        return cluster
    }
}
