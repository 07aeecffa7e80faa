import AtollClusterPKI
import AtollClusterStore
import AtollCore
import AtollManager
import AtollRaft
import Foundation
import Logging
import X509

/// A manager's consensus and what the leader runs: the Raft server over the store, the loop that
/// follows who leads, the `Manager` and its upkeep while this node leads.
extension ClusterController {
    /// The Raft server over the store (whose writes go through it from now on), the cluster port,
    /// and the loops that follow who leads and keep the admin bundle current.
    func startConsensus(
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

    /// Takes up or puts down the leader's work as the consensus changes hands; a manager that
    /// does not lead runs an agent.
    func follow(_ status: RaftStatus, of raft: RaftNode) async {
        guard consensus?.raft === raft, let membership else { return }
        if status.role == .leader, running == nil {
            await lead(raft, membership)
        } else if status.role != .leader, running != nil {
            await stopLeading()
        }
        guard consensus?.raft === raft else { return }
        if running == nil, agent == nil, status.members.contains(where: { $0.id == membership.nodeID }) {
            startAgent(membership)
        }
    }

    /// This manager leads: once the log's earlier entries are applied here, the manager runs.
    private func lead(_ raft: RaftNode, _ membership: ClusterMembership) async {
        while consensus?.raft === raft, await raft.status.role == .leader {
            do {
                try await raft.barrier()
                guard let store = consensus?.store, consensus?.raft === raft else { return }
                let manager = try await BlockingWork.run { try Manager(store: store, nodeID: membership.nodeID) }
                // The role may have stopped, or leadership moved on, meanwhile.
                guard consensus?.raft === raft, running == nil, await raft.status.role == .leader else { return }
                await stopAgent()
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

    func stopLeading() async {
        let tasks = leaderTasks
        leaderTasks = []
        running = nil
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        logger.info("this manager no longer leads the cluster")
    }

    /// The leader's upkeep, every half second: ends a CA rotation once every node has renewed
    /// (serving a certificate of the next CA itself first, so that no manager is left holding
    /// only the old one), and gives the leader a new certificate (and the port with it) when its
    /// own is from neither CA or has a third of its life left.
    private func upkeep(_ manager: Manager) async {
        while !Task.isCancelled {
            do {
                let progress = try await BlockingWork.run { try manager.rotationProgress() }
                if let progress, progress.renewed == progress.of {
                    try await serveCertificate(of: manager, fromNextCA: true)
                    _ = try await BlockingWork.run { try manager.completeRotationIfRenewed() }
                }
                if let credentials = served.value.withLock({ $0 }),
                    Self.needsNewCertificate(credentials.certificate, manager)
                {
                    try await serveCertificate(of: manager, fromNextCA: false)
                }
            } catch {
                logger.error("cluster upkeep failed (tried again shortly): \(error)")
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Whether the leader's own certificate must be replaced: from neither CA, or a third of its
    /// life left. (A manager that takes over mid-rotation may hold one of the next CA's: it stays.)
    static func needsNewCertificate(_ certificate: Certificate, _ manager: Manager) -> Bool {
        let lifetime = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        return manager.issuer(of: certificate) == nil || certificate.notValidAfter.timeIntervalSinceNow < lifetime / 3
    }

    /// Gives the leader a new certificate (from the next CA during a rotation, when asked),
    /// saves it, and serves the port with it.
    private func serveCertificate(of manager: Manager, fromNextCA: Bool) async throws {
        guard running === manager, let membership, var credentials = served.value.withLock({ $0 }) else { return }
        if fromNextCA, let next = manager.pendingCA, next.validates(credentials.certificate) { return }
        let (key, addresses) = (credentials.key, certificateAddresses(membership))
        credentials.certificate = try await BlockingWork.run {
            try manager.reissueOwnCertificate(key: key, addresses: addresses, fromNextCA: fromNextCA)
        }
        credentials.roots = manager.trustedRoots
        try files.save(membership, credentials)
        let issuer = (fromNextCA ? manager.pendingCA : nil) ?? manager.ca
        logger.info("the manager's certificate is renewed (CA \(issuer.fingerprint))")
        try await restartPort(credentials)
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

    /// ca.pem, cert.pem and key.pem for `atoll --tls-dir`: an admin certificate of this cluster.
    func writeAdminBundle(ca: CertificateAuthority, clusterID: String, to directory: String) throws {
        let key = KeyPair.generate()
        let certificate = try Manager.issueAdminCertificate(from: ca, clusterID: clusterID, key: key)
        try Syscall.mkdirAll(directory, mode: 0o700)
        try FileSystem.writeFileAtomically("\(directory)/key.pem", Array(key.pem.utf8), mode: 0o600)
        try FileSystem.writeFileAtomically(
            "\(directory)/cert.pem", Array(try certificate.serializeAsPEM().pemString.utf8), mode: 0o644)
        try FileSystem.writeFileAtomically("\(directory)/ca.pem", Array(ca.certificatePEM.utf8), mode: 0o644)
    }

    /// A manager whose certificate expired, or nears its end, while its daemon was down: a new
    /// one from the CA its replica holds (every manager holds the CA), so that it can reach the
    /// others again.
    func renewedAtStart(
        _ credentials: NodeCredentials, _ membership: ClusterMembership, _ store: ClusterStore
    ) throws -> NodeCredentials {
        let certificate = credentials.certificate
        let lifetime = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        guard certificate.notValidAfter.timeIntervalSinceNow < lifetime / 3, let cluster = try store.cluster() else {
            return credentials
        }
        let ca = try CertificateAuthority(certificatePEM: cluster.caCertificatePEM, keyPEM: cluster.caKeyPEM)
        var renewed = credentials
        renewed.certificate = try ca.issue(
            publicKey: credentials.key.privateKey.publicKey,
            identity: CertificateIdentity(nodeID: membership.nodeID, role: .manager, clusterID: cluster.id),
            addresses: certificateAddresses(membership), validity: Manager.certificateValidity)
        renewed.roots = [ca.certificate]
        try files.save(membership, renewed)
        logger.info("renewed this manager's certificate at start (valid until \(renewed.certificate.notValidAfter))")
        return renewed
    }
}
