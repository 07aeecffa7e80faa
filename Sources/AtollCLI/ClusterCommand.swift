import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import Foundation
import GRPCCore

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Manage the cluster (as docker swarm).",
        subcommands: [
            ClusterInitCommand.self, ClusterJoinCommand.self, ClusterLeaveCommand.self, ClusterJoinTokenCommand.self,
            ClusterInfoCommand.self, ClusterCACommand.self,
        ])
}

struct ClusterInitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Make this host the manager of a new cluster.",
        discussion: """
            Creates the cluster's CA, this node's certificate, the join tokens and the cluster
            store, and serves the cluster API with mutual TLS on the listen address. An admin
            bundle (ca.pem, cert.pem, key.pem) is written for managing the cluster from
            elsewhere: atoll -H tcp://MANAGER:PORT --tls-dir DIR node ls.
            """)
    @Option(
        help: "IP[:PORT] other nodes reach this manager at (default: this host's default-route address, port 2377).")
    var advertiseAddr: String?
    @Option(help: "IP[:PORT] to listen on (default: 0.0.0.0 and the advertised port).") var listenAddr: String?
    @Option(help: "Where to write the admin client bundle (default: ROOT/cluster/admin).") var adminDir: String?

    func run() async throws {
        var request = Atoll_Cluster_V1_InitRequest()
        request.advertiseAddr = advertiseAddr ?? ""
        request.listenAddr = listenAddr ?? ""
        if let adminDir {
            request.adminDir =
                adminDir.hasPrefix("/") ? adminDir : FileManager.default.currentDirectoryPath + "/" + adminDir
        }
        let response = try await GlobalOptions.withEngine { [request] in
            try await $0.membership.initialize(request, options: .within(seconds: 60))
        }
        Output.print(
            """
            Cluster initialized: this node (\(response.nodeID)) is now its manager.

            To add a worker to this cluster, run the following command:

                atoll cluster join --token \(response.workerToken) \(response.managerAddr)

            To manage the cluster from another host, copy \(response.adminDir) there and run:

                atoll -H tcp://\(response.managerAddr) --tls-dir DIR node ls
            """)
    }
}

struct ClusterJoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join", abstract: "Join a cluster as a node.",
        discussion: """
            The token pins the cluster's CA: the manager must prove it holds a certificate of \
            that CA before this node sends anything. With the manager token, the node becomes \
            one of the cluster's managers: it serves the cluster port on --listen-addr, holds a \
            replica of the cluster's state, and takes over as leader if the leader fails, as \
            long as a majority of the managers are up (run 3 or 5 of them).
            """)
    @Option(help: "The join token (atoll cluster join-token worker|manager, on a manager).") var token: String
    @Option(help: "IP this node is reached at (default: the address it reaches the manager from).")
    var advertiseAddr: String?
    @Option(help: "As a manager: IP[:PORT] to serve the cluster port on (default: 0.0.0.0:2377).")
    var listenAddr: String?
    @Argument(help: "A manager's IP:PORT.") var manager: String

    func run() async throws {
        var request = Atoll_Cluster_V1_JoinRequest()
        request.token = token
        request.managerAddr = manager
        request.advertiseAddr = advertiseAddr ?? ""
        request.listenAddr = listenAddr ?? ""
        let response = try await GlobalOptions.withEngine { [request] in
            try await $0.membership.join(request, options: .within(seconds: 60))
        }
        Output.print("This node (\(response.nodeID)) joined the cluster as a \(response.role).")
    }
}

struct ClusterLeaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leave", abstract: "Leave the cluster.",
        discussion: """
            A worker stays in the managers' list, down, until atoll node rm removes it. A manager \
            needs --force: it is taken out of the managers (and their quorum) first; the last \
            manager leaving ends the cluster.
            """)
    @Flag(name: .shortAndLong, help: "Leave even as a manager (the last one ends the cluster).") var force = false

    func run() async throws {
        var request = Atoll_Cluster_V1_LeaveRequest()
        request.force = force
        _ = try await GlobalOptions.withEngine { [request] in try await $0.membership.leave(request) }
        Output.print("Node left the cluster.")
    }
}

struct ClusterJoinTokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join-token", abstract: "Show or rotate a join token.")
    @Flag(name: .shortAndLong, help: "Only display the token.") var quiet = false
    @Flag(help: "Replace the token: the old one stops working (nodes already in stay).") var rotate = false
    @Argument(help: "worker or manager.") var role: String

    func validate() throws {
        guard ["worker", "manager"].contains(role) else { throw ValidationError("want worker or manager, not \(role)") }
    }

    func run() async throws {
        var request = Atoll_Cluster_V1_JoinTokensRequest()
        request.rotate = rotate ? role : ""
        let (tokens, info) = try await GlobalOptions.withEngine { [request] client in
            (
                try await client.control.joinTokens(request),
                try await client.control.clusterInfo(Atoll_Cluster_V1_ClusterInfoRequest())
            )
        }
        let token = role == "worker" ? tokens.worker : tokens.manager
        if quiet {
            Output.print(token)
            return
        }
        if rotate { Output.print("Successfully rotated the \(role) join token.\n") }
        Output.print(
            """
            To add a \(role) to this cluster, run the following command:

                atoll cluster join --token \(token) \(info.managerAddr)
            """)
    }
}

struct ClusterInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show this node's place in its cluster.")

    func run() async throws {
        let info = try await GlobalOptions.withEngine { try await $0.membership.info(Atoll_Cluster_V1_InfoRequest()) }
        var lines = ["Cluster: \(info.state)"]
        if info.state != "inactive" {
            lines += [
                " Cluster ID: \(info.clusterID)", " Node ID: \(info.nodeID)", " Role: \(info.role)",
                " Manager: \(info.managerAddr)", " Connected: \(info.connected)",
            ]
            if !info.managers.isEmpty { lines.append(" Managers: \(info.managers.joined(separator: ", "))") }
            if info.certificateExpiry > 0 {
                lines.append(
                    " Certificate expires: \(Date(timeIntervalSince1970: TimeInterval(info.certificateExpiry)))")
            }
        }
        Output.print(lines.joined(separator: "\n"))
    }
}

struct ClusterCACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca", abstract: "Show the cluster's CA, or rotate it.",
        discussion: """
            With --rotate, a new CA signs every certificate from then on: each node that is up
            renews its certificate over its session (it is told to in its heartbeats), and once
            all have, the new CA replaces the old one, whose certificates are refused from then
            on. A node that was down meanwhile must leave and join again with the new token.
            The join tokens change (they pin the CA) and the admin bundle is rewritten.
            """)
    @Flag(help: "Rotate the CA.") var rotate = false
    @Flag(name: .shortAndLong, help: "Do not wait for the rotation to complete.") var detach = false
    @Flag(name: .shortAndLong, help: "Print only the CA's fingerprint.") var quiet = false

    func run() async throws {
        if !rotate {
            let info = try await GlobalOptions.withEngine {
                try await $0.control.clusterInfo(Atoll_Cluster_V1_ClusterInfoRequest())
            }
            Output.print(quiet ? info.caFingerprint : "CA fingerprint (sha256): \(info.caFingerprint)")
            if !info.caRotation.isEmpty, !quiet { Output.print("Rotation in progress: \(info.caRotation)") }
            return
        }
        var info = try await GlobalOptions.withEngine {
            try await $0.control.rotateCA(Atoll_Cluster_V1_RotateCARequest())
        }
        var shown = ""
        var unanswered = 0
        while !detach && !info.caRotation.isEmpty {
            if info.caRotation != shown, !quiet { Output.print("Rotating the CA: \(info.caRotation)") }
            shown = info.caRotation
            try await Task.sleep(for: .milliseconds(500))
            do {
                info = try await GlobalOptions.withEngine {
                    try await $0.control.clusterInfo(Atoll_Cluster_V1_ClusterInfoRequest())
                }
                unanswered = 0
            } catch {
                // Managers serve their port anew with each new certificate: ride out a few seconds.
                guard (error as? RPCError)?.code == .unavailable, unanswered < 20 else { throw error }
                unanswered += 1
            }
        }
        if detach {
            Output.print("CA rotation started: atoll cluster ca shows how it stands.")
        } else {
            Output.print(quiet ? info.caFingerprint : "CA rotated: new fingerprint (sha256) \(info.caFingerprint)")
        }
    }
}
