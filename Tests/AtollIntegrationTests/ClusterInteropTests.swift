import Foundation
import Testing

/// The cluster API is standard gRPC: a Python client generated from proto/ by grpcio-tools
/// (Fixtures/control_client.py, run in deploy/install-deps' venv) calls a manager's Control
/// service over mutual TLS with the admin bundle `cluster init` writes.
@Suite(.serialized) struct ClusterInteropTests {
    static let python = "/opt/atoll-test-venv/bin/python"
    static let client = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/control_client.py").path

    /// What the client prints.
    struct Answer: Decodable {
        struct Node: Decodable { let id, hostname, role, state: String }
        let clusterID: String
        let nodes: [Node]
        enum CodingKeys: String, CodingKey {
            case clusterID = "cluster_id"
            case nodes
        }
    }

    /// Runs the Python client against `address` with the bundle in `tlsDirectory`.
    static func control(_ address: String, _ tlsDirectory: String, extra: [String] = []) -> DaemonFixture.Result {
        DaemonFixture.run(python, [client, "\(DaemonFixture.packageRoot)/proto", address, tlsDirectory] + extra)
    }

    @Test func aPythonClientGeneratedFromTheProtoCallsControlWithTheAdminCertificateAndAForeignOneIsRefused()
        throws
    {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.python),
            "no \(Self.python): run deploy/install-deps (grpcio and grpcio-tools from PyPI)")
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }

        // A free loopback port: a taken one fails the init (which then leaves nothing behind).
        var address: String?
        var attempts: [String] = []
        for _ in 0..<5 where address == nil {
            let candidate = "127.0.0.1:\(Int.random(in: 20000..<60000))"
            let initialized = daemon.atoll([
                "cluster", "init", "--advertise-addr", candidate, "--listen-addr", candidate,
            ])
            if initialized.status == 0 { address = candidate } else { attempts.append(initialized.stderr) }
        }
        let manager = try #require(address, "cluster init failed: \(attempts)")
        let admin = "\(daemon.root)/cluster/admin"

        let called = Self.control(manager, admin)
        try #require(called.status == 0, "\(called.stdout)\(called.stderr)")
        let answer = try JSONDecoder().decode(Answer.self, from: Data(called.stdout.utf8))
        let info = daemon.atoll(["cluster", "info"]).stdout
        #expect(!answer.clusterID.isEmpty && info.contains("Cluster ID: \(answer.clusterID)"), "\(info)")
        let node = try #require(answer.nodes.first, "\(called.stdout)")
        #expect(answer.nodes.count == 1, "\(called.stdout)")
        #expect(node.role == "manager" && node.state == "ready", "\(called.stdout)")
        #expect(info.contains("Node ID: \(node.id)"), "\(info)")
        let hostname = daemon.atoll(["node", "inspect", "self", "-f", "{{.Description.Hostname}}"]).stdout
        #expect(node.hostname + "\n" == hostname, "\(called.stdout)")

        // A certificate of no CA of the cluster's: the handshake accepts any client certificate
        // (joining nodes present throwaway ones), and Control then refuses the call.
        let foreign = "\(daemon.directory)/foreign"
        let made = DaemonFixture.shell(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=x -keyout \(foreign)-key.pem -out \(foreign)-cert.pem 2>&1"
        )
        try #require(made.status == 0, "\(made.stdout)")
        let refused = Self.control(
            manager, admin, extra: ["--cert", "\(foreign)-cert.pem", "--key", "\(foreign)-key.pem"])
        #expect(refused.status == 3, "\(refused.stdout)\(refused.stderr)")
        #expect(refused.stdout.isEmpty, "\(refused.stdout)")
        #expect(
            refused.stderr.contains(
                "RPC_ERROR PERMISSION_DENIED the client certificate was not issued by this cluster's CA"),
            "\(refused.stderr)")

        // A certificate the cluster's own CA signed, but expired: refused, saying so.
        let expired = "\(daemon.directory)/expired-admin"
        let written = DaemonFixture.run(
            "/usr/bin/python3",
            [
                URL(fileURLWithPath: Self.client).deletingLastPathComponent().appendingPathComponent(
                    "expired_admin_cert.py"
                ).path, "\(daemon.root)/manager/cluster.db", expired,
            ])
        try #require(written.status == 0, "\(written.stderr)")
        let stale = daemon.atoll(["-H", "tcp://\(manager)", "--tls-dir", expired, "node", "ls"])
        #expect(stale.status == 1)
        #expect(stale.stderr.contains("the client certificate expired at"), "\(stale.stderr)")
        #expect(daemon.atoll(["-H", "tcp://\(manager)", "--tls-dir", admin, "node", "ls", "-q"]).status == 0)

        #expect(daemon.atoll(["cluster", "leave", "--force"]).status == 0)
    }
}
