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

/// A worker's side of its session with the manager: one mutual-TLS connection carrying a
/// heartbeat every period (the manager says how long), its certificate renewed when a third
/// of its life is left, and a reconnection with backoff whenever the manager is away.
final class Agent: Sendable {
    let membership: ClusterMembership
    let files: ClusterFiles
    let description: NodeDescription
    private let state = Mutex<(connected: Bool, removal: String?)>((false, nil))
    private let logger = Logger(label: "atoll.agent")

    init(membership: ClusterMembership, files: ClusterFiles, description: NodeDescription) {
        self.membership = membership
        self.files = files
        self.description = description
    }

    var connected: Bool { state.withLock { $0.connected } }
    /// Why the manager no longer takes this node (it was removed), if it said so.
    var removal: String? { state.withLock { $0.removal } }

    func run() async {
        var backoff = Duration.milliseconds(500)
        while !Task.isCancelled {
            do {
                try await session { backoff = .milliseconds(500) }
            } catch is CancellationError {
                break
            } catch {
                if let refusal = error as? RPCError, refusal.code == .permissionDenied {
                    state.withLock { $0 = (false, refusal.message) }
                    logger.error("the manager refuses this node: \(refusal.message); leave the cluster and join again")
                    return
                }
                if connected { logger.warning("lost the manager at \(membership.managerAddress): \(error)") }
                state.withLock { $0.connected = false }
            }
            // Jitter, so that a restarted manager is not met by every node at once.
            let wait = backoff * Double.random(in: 0.5...1.0)
            do { try await Task.sleep(for: wait) } catch { break }
            backoff = min(backoff * 2, .seconds(10))
        }
        state.withLock { $0.connected = false }
    }

    /// One connection: heartbeats until it fails, or until a renewed certificate needs a new one.
    private func session(onConnected: () -> Void) async throws {
        var credentials = try files.credentials()
        let transport = try HTTP2ClientTransport.Posix(
            target: try ClusterTLS.target(membership.managerAddress),
            transportSecurity: try ClusterTLS.clientSecurity(credentials))
        try await withGRPCClient(transport: transport) { client in
            let dispatcher = Atoll_Cluster_V1_Dispatcher.Client(wrapping: client)
            var request = Atoll_Cluster_V1_HeartbeatRequest()
            request.description_p = description.message
            while true {
                let response = try await dispatcher.heartbeat(request, options: .within(seconds: 10))
                if !connected { logger.info("connected to the manager at \(membership.managerAddress)") }
                state.withLock { $0.connected = true }
                onConnected()
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
        try files.save(membership, NodeCredentials(key: key, certificate: renewed, roots: credentials.roots))
        logger.info("renewed this node's certificate (valid until \(renewed.notValidAfter))")
        return true
    }
}
