import AtollClusterPKI
import AtollClusterStore
import AtollCore
import AtollManager
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// A manager's cluster port, and the agent a node that does not lead runs.
extension ClusterController {
    /// Serves CA, Dispatcher, Control and Raft on the cluster port. A port that binds after the
    /// role stopped (a restart raced with leave or shutdown) is shut down again.
    func startPort(_ consensus: Consensus, _ credentials: NodeCredentials, listen: String) async throws {
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
        let server = GRPCServer(
            transport: transport,
            services: [
                CAService(cluster: self), DispatcherService(cluster: self), ControlService(cluster: self, local: false),
                RaftService(
                    cluster: self, raft: consensus.raft, store: consensus.store, clusterID: membership?.clusterID ?? ""),
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
        guard bound, self.consensus?.raft === consensus.raft, self.server == nil else {
            server.beginGracefulShutdown()
            serving.cancel()
            guard bound else {
                throw AtollError(.unavailable, "cannot listen for the cluster on \(listen): it did not bind within 5 s")
            }
            return
        }
        self.server = server
        self.serving = serving
        served.value.withLock { $0 = credentials }
        logger.info("cluster manager serving on \(listen) (mutual TLS)")
    }

    /// Serves the cluster port again with new credentials (nodes reconnect within a second).
    func restartPort(_ credentials: NodeCredentials) async throws {
        guard let membership, let server, let consensus else { return }
        server.beginGracefulShutdown()
        let previous = serving
        self.server = nil
        serving = nil
        await previous?.value
        guard !Task.isCancelled, self.consensus?.raft === consensus.raft else { return }
        try await startPort(consensus, credentials, listen: membership.listenAddress ?? membership.managerAddress)
    }

    /// A non-leading manager's agent renewed its certificate: the port serves the new one.
    func agentRenewed(_ credentials: NodeCredentials) async {
        guard membership?.role == .manager else { return }
        do { try await restartPort(credentials) } catch {
            logger.error("cannot serve the cluster port with the renewed certificate: \(error)")
        }
    }

    func startAgent(_ membership: ClusterMembership) {
        let raft = consensus?.raft
        let agent = Agent(
            membership: membership, files: files, description: description,
            leaderHint: { await raft?.status.leader?.address },
            renewed: { [weak self] credentials in await self?.agentRenewed(credentials) })
        self.agent = agent
        agentTask = Task { await agent.run() }
    }

    func stopAgent() async {
        let task = agentTask
        agentTask = nil
        agent = nil
        task?.cancel()
        await task?.value
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
