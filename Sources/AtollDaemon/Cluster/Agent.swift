import AtollAPI
import AtollClient
import AtollClusterPKI
import AtollCore
import AtollManager
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Synchronization
import X509

/// A node's side of its session with the cluster's leader: one mutual-TLS connection carrying
/// a heartbeat every period (the leader says how long), its certificate renewed when a third of
/// its life is left, and a reconnection with backoff whenever the leader is away. Heartbeat
/// answers list the managers; when one is away the agent tries the next, and a manager that
/// does not lead says where the leader is. Managers that do not lead run one too.
final class Agent: Sendable {
    private struct State {
        var connected = false
        var removal: String?
        /// The managers as last heard, the leader's first.
        var managers: [String]
        /// Where to go next: the leader a manager named, tried before the list.
        var redirect: String?
        var attempt = 0
    }
    let membership: ClusterMembership
    let files: ClusterFiles
    let description: NodeDescription
    /// On a manager: the leader its own consensus knows of.
    private let leaderHint: @Sendable () async -> String?
    /// Called with the new credentials after a renewal (a manager serves its port with them).
    private let renewed: @Sendable (NodeCredentials) async -> Void
    private let state: Mutex<State>
    private let logger = Logger(label: "atoll.agent")

    init(
        membership: ClusterMembership, files: ClusterFiles, description: NodeDescription,
        leaderHint: @escaping @Sendable () async -> String? = { nil },
        renewed: @escaping @Sendable (NodeCredentials) async -> Void = { _ in }
    ) {
        self.membership = membership
        self.files = files
        self.description = description
        self.leaderHint = leaderHint
        self.renewed = renewed
        state = Mutex(State(managers: membership.managerCandidates))
    }

    var connected: Bool { state.withLock { $0.connected } }
    /// Why the manager no longer takes this node (it was removed), if it said so.
    var removal: String? { state.withLock { $0.removal } }
    /// The managers' addresses as last heard, the leader's first.
    var managers: [String] { state.withLock { $0.managers } }

    func run() async {
        var backoff = Duration.milliseconds(500)
        while !Task.isCancelled {
            let address = await nextAddress()
            do {
                try await session(address) { backoff = .milliseconds(500) }
            } catch is CancellationError {
                break
            } catch {
                if let refusal = error as? RPCError, refusal.code == .permissionDenied {
                    state.withLock {
                        $0.connected = false
                        $0.removal = refusal.message
                    }
                    logger.error("the manager refuses this node: \(refusal.message); leave the cluster and join again")
                    return
                }
                if let refusal = error as? RPCError,
                    let leader = Array(refusal.metadata[stringValues: ClusterController.leaderMetadataKey]).first,
                    leader != address
                {
                    // A manager that does not lead: go to the leader at once.
                    state.withLock { $0.redirect = leader }
                    continue
                }
                if connected { logger.warning("lost the manager at \(address): \(error)") }
                state.withLock {
                    $0.connected = false
                    $0.attempt += 1
                }
            }
            // Jitter, so that a restarted manager is not met by every node at once.
            let wait = backoff * Double.random(in: 0.5...1.0)
            do { try await Task.sleep(for: wait) } catch { break }
            backoff = min(backoff * 2, .seconds(10))
        }
        state.withLock { $0.connected = false }
    }

    /// The leader a manager named, else (on a manager) the leader its consensus knows, else the
    /// managers in turn.
    private func nextAddress() async -> String {
        if let redirect = state.withLock({ state -> String? in
            defer { state.redirect = nil }
            return state.redirect
        }) {
            return redirect
        }
        if let leader = await leaderHint(), leader != membership.managerAddress || membership.role == .worker {
            return leader
        }
        return state.withLock { state in
            let candidates = state.managers.filter { membership.role == .worker || $0 != membership.managerAddress }
            guard !candidates.isEmpty else { return membership.managerAddress }
            return candidates[state.attempt % candidates.count]
        }
    }

    /// Keeps the managers' addresses a heartbeat listed (saved, so a restarted agent knows them).
    private func learn(managers: [String], via address: String) {
        guard !managers.isEmpty else { return }
        let changed = state.withLock { state in
            defer { state.managers = managers }
            state.attempt = 0
            return state.managers != managers
        }
        // What is on disk, not this agent's copy: the controller may have recorded more since.
        guard changed, var saved = try? files.membership() else { return }
        saved.managers = managers
        try? files.saveMembership(saved)
        logger.info("the cluster's managers: \(managers.joined(separator: ", ")) (heard from \(address))")
    }

    /// One connection: heartbeats until it fails, or until a renewed certificate needs a new one.
    private func session(_ address: String, onConnected: () -> Void) async throws {
        var credentials = try files.credentials()
        let transport = try HTTP2ClientTransport.Posix(
            target: try ClusterTLS.target(address), transportSecurity: try ClusterTLS.clientSecurity(credentials))
        try await withGRPCClient(transport: transport) { client in
            let dispatcher = Atoll_Cluster_V1_Dispatcher.Client(wrapping: client)
            var request = Atoll_Cluster_V1_HeartbeatRequest()
            request.description_p = description.message
            while true {
                let response = try await dispatcher.heartbeat(request, options: .within(seconds: 10))
                if !connected { logger.info("connected to the leader at \(address)") }
                state.withLock { $0.connected = true }
                onConnected()
                learn(managers: response.managers, via: address)
                request = Atoll_Cluster_V1_HeartbeatRequest()
                // The roots to trust come over this authenticated session (a CA rotation adds
                // the next CA, then drops the old one).
                let roots = try response.trustedRootsPem.map { try Certificate(pemEncoded: $0) }
                if !roots.isEmpty, roots != credentials.roots {
                    try files.saveRoots(roots)
                    credentials.roots = roots
                    logger.info("now trusting \(roots.count) cluster root(s) for the manager")
                }
                if try await renewIfDue(credentials, told: response.renewCertificate, client: client) { return }
                try await Task.sleep(for: .milliseconds(max(100, response.periodMs)))
            }
        }
    }

    /// Renews the certificate when the manager says so (a CA rotation) or less than a third of
    /// its life is left; true when it did.
    private func renewIfDue(
        _ credentials: NodeCredentials, told: Bool, client: GRPCClient<HTTP2ClientTransport.Posix>
    ) async throws -> Bool {
        let certificate = credentials.certificate
        let lifetime = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        guard told || certificate.notValidAfter.timeIntervalSinceNow < lifetime / 3 else { return false }
        let key = KeyPair.generate()
        var request = Atoll_Cluster_V1_RenewNodeCertificateRequest()
        request.csrPem = try key.certificateSigningRequest(commonName: description.hostname)
        let response = try await Atoll_Cluster_V1_CA.Client(wrapping: client).renewNodeCertificate(
            request, options: .within(seconds: 20))
        let renewed = try Certificate(pemEncoded: response.certificatePem)
        guard
            credentials.roots.contains(where: {
                (try? CertificateAuthorityCheck(certificate: $0))?.validates(renewed) ?? false
            }),
            renewed.publicKey == Certificate.PublicKey(key.privateKey.publicKey)
        else {
            throw AtollError(.permissionDenied, "the manager renewed the certificate with one that does not match")
        }
        let saved = NodeCredentials(key: key, certificate: renewed, roots: credentials.roots)
        var membership = (try? files.membership()) ?? self.membership
        membership.managers = managers
        try files.save(membership, saved)
        logger.info("renewed this node's certificate (valid until \(renewed.notValidAfter))")
        await self.renewed(saved)
        return true
    }
}
