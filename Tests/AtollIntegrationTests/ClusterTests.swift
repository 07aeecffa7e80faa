import Foundation
import Glibc
import Testing

/// A cluster on the network-namespace lab (deploy/lab): a manager and two workers, each its own
/// atolld in its own namespace, talking gRPC over mutual TLS across the lab bridge.
@Suite(.serialized) struct ClusterTests {
    /// The lab, its hosts' CLIs, and the manager's port.
    struct Lab {
        let directory = "/tmp/atoll-it-lab-\(UUID().uuidString.prefix(6).lowercased())"
        var environment: [String: String] {
            [
                "ATOLL_LAB": directory, "ATOLL_LAB_INDEX": "1", "ATOLLD": "\(DaemonFixture.binDirectory)/atolld",
                "ATOLL": "\(DaemonFixture.binDirectory)/atoll",
            ]
        }
        let script = "\(DaemonFixture.packageRoot)/deploy/lab"
        /// Lab 1 (10.213.1.0/24), apart from the overlay test's lab 0.
        let manager = "10.213.1.11:2377"

        func lab(_ arguments: [String]) -> DaemonFixture.Result {
            DaemonFixture.run(script, arguments, environment: environment)
        }

        func atoll(_ host: Int, _ arguments: [String]) -> DaemonFixture.Result {
            DaemonFixture.run(
                "\(DaemonFixture.binDirectory)/atoll", arguments,
                environment: ["ATOLL_HOST": "unix://\(directory)/host\(host)/atolld.sock"])
        }

        /// The CLI from the machine itself (outside every lab host), to the manager's port.
        func remote(tlsDirectory: String, _ arguments: [String]) -> DaemonFixture.Result {
            DaemonFixture.run(
                "\(DaemonFixture.binDirectory)/atoll",
                ["-H", "tcp://\(manager)", "--tls-dir", tlsDirectory] + arguments)
        }

        /// `node ls` rows on the manager: hostname → status.
        func states() -> [String: String] {
            let list = atoll(1, ["node", "ls"])
            var states: [String: String] = [:]
            for line in list.stdout.split(separator: "\n").dropFirst() {
                let columns = line.split(separator: " ", omittingEmptySubsequences: true).filter { $0 != "*" }
                if columns.count >= 3 { states[String(columns[1])] = String(columns[2]) }
            }
            return states
        }
    }

    @Test func aManagerAndTwoWorkersFormAClusterThatSurvivesDeathsAndRestarts() throws {
        let lab = Lab()
        let up = lab.lab(["up", "3"])
        defer {
            let down = lab.lab(["down"])
            #expect(down.status == 0, "\(down.stderr)")
            #expect(!FileManager.default.fileExists(atPath: lab.directory))
        }
        try #require(up.status == 0, "\(up.stdout)\(up.stderr)")
        let scratch = NSTemporaryDirectory() + "atoll-it-cluster-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        let initialized = lab.atoll(1, ["cluster", "init", "--advertise-addr", lab.manager])
        try #require(initialized.status == 0, "\(initialized.stderr)")
        #expect(initialized.stdout.contains("atoll cluster join --token ATLTKN-1-"), "\(initialized.stdout)")
        let again = lab.atoll(1, ["cluster", "init", "--advertise-addr", lab.manager])
        #expect(again.status == 1)
        #expect(again.stderr.contains("already part of cluster"), "\(again.stderr)")
        let token = lab.atoll(1, ["cluster", "join-token", "-q", "worker"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.hasPrefix("ATLTKN-1-"))
        let hostnames = (1...3).map { "lab-host\($0)" }

        // A wrong secret and a token of another cluster are refused, and nothing is registered.
        let parts = token.split(separator: "-")
        let wrongSecret = "ATLTKN-1-\(parts[2])-\(String(repeating: "x", count: parts[3].count))"
        let refused = lab.atoll(2, ["cluster", "join", "--token", wrongSecret, lab.manager])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("invalid join token"), "\(refused.stderr)")
        let foreign = "ATLTKN-1-\(String(repeating: "ab", count: 32))-\(parts[3])"
        let pinned = lab.atoll(2, ["cluster", "join", "--token", foreign, lab.manager])
        #expect(pinned.status == 1)
        #expect(pinned.stderr.contains("token's CA fingerprint"), "\(pinned.stderr)")
        #expect(lab.atoll(2, ["cluster", "info"]).stdout.hasPrefix("Cluster: inactive"))

        for host in 2...3 {
            let join = lab.atoll(host, ["cluster", "join", "--token", token, lab.manager])
            #expect(join.status == 0, "\(join.stderr)")
            #expect(join.stdout.contains("joined the cluster as a worker"), "\(join.stdout)")
        }
        #expect(
            DaemonFixture.eventually(15) { Set(hostnames).allSatisfy { lab.states()[$0] == "Ready" } },
            "\(lab.atoll(1, ["node", "ls"]).stdout)")
        #expect(lab.atoll(2, ["cluster", "info"]).stdout.contains("Connected: true"))
        let workerList = lab.atoll(2, ["node", "ls"])
        #expect(workerList.status == 1)
        #expect(workerList.stderr.contains("not a cluster manager"), "\(workerList.stderr)")

        // Remote management with the admin bundle, from outside every lab host.
        let admin = "\(lab.directory)/host1/root/cluster/admin"
        let remote = lab.remote(tlsDirectory: admin, ["node", "ls"])
        #expect(remote.status == 0, "\(remote.stderr)")
        #expect(hostnames.allSatisfy { remote.stdout.contains($0) }, "\(remote.stdout)")
        let inspect = lab.remote(tlsDirectory: admin, ["node", "inspect", "-f", "{{.Spec.Role}}", hostnames[1]])
        #expect(inspect.stdout == "worker\n", "\(inspect.stdout)\(inspect.stderr)")

        // A context saves the host and TLS directory.
        func withContext(_ arguments: [String]) -> DaemonFixture.Result {
            DaemonFixture.run(
                "\(DaemonFixture.binDirectory)/atoll", arguments, environment: ["ATOLL_CONFIG": "\(scratch)/cli"])
        }
        let create = withContext(["context", "create", "--host", "tcp://\(lab.manager)", "--tls-dir", admin, "lab"])
        #expect(create.status == 0, "\(create.stderr)")
        #expect(withContext(["context", "use", "lab"]).status == 0)
        #expect(withContext(["context", "ls"]).stdout.contains("lab *"))
        let viaContext = withContext(["node", "ls", "-q"])
        #expect(viaContext.stdout.split(separator: "\n").count == 3, "\(viaContext.stdout)\(viaContext.stderr)")
        let missing = withContext(["--context", "nope", "node", "ls"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("context \"nope\" not found"), "\(missing.stderr)")
        #expect(withContext(["context", "rm", "lab"]).status == 1, "the current context needs --force")
        #expect(withContext(["context", "rm", "--force", "lab"]).status == 0)
        #expect(withContext(["context", "ls", "-q"]).stdout == "default\n")

        // A worker's own certificate cannot call the admin API.
        let workerTLS = "\(scratch)/worker-tls"
        try FileManager.default.createDirectory(atPath: workerTLS, withIntermediateDirectories: true)
        for (from, to) in [("ca.pem", "ca.pem"), ("node.pem", "cert.pem"), ("node-key.pem", "key.pem")] {
            try FileManager.default.copyItem(
                atPath: "\(lab.directory)/host2/root/cluster/\(from)", toPath: "\(workerTLS)/\(to)")
        }
        let asWorker = lab.remote(tlsDirectory: workerTLS, ["node", "ls"])
        #expect(asWorker.status == 1)
        #expect(asWorker.stderr.contains("a worker certificate cannot call this"), "\(asWorker.stderr)")

        // A certificate of another CA, and a plaintext client, get nothing.
        let foreignTLS = "\(scratch)/foreign-tls"
        try FileManager.default.createDirectory(atPath: foreignTLS, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(admin)/ca.pem", toPath: "\(foreignTLS)/ca.pem")
        let made = DaemonFixture.shell(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj '/CN=intruder/OU=atoll-admin' -keyout \(foreignTLS)/key.pem -out \(foreignTLS)/cert.pem 2>&1"
        )
        try #require(made.status == 0, "\(made.stdout)")
        let intruder = lab.remote(tlsDirectory: foreignTLS, ["node", "ls"])
        #expect(intruder.status == 1)
        #expect(intruder.stderr.contains("not issued by this cluster's CA"), "\(intruder.stderr)")
        let plaintext = DaemonFixture.shell("curl -s -m 5 --http2-prior-knowledge http://\(lab.manager)/ -o /dev/null")
        #expect(plaintext.status != 0, "a plaintext client gets no answer")

        // A dead worker is marked down within 15 s, and ready again once it is back.
        #expect(lab.lab(["stop", "3"]).status == 0)
        let killed = Date()
        #expect(DaemonFixture.eventually(20) { lab.states()[hostnames[2]] == "Down" })
        #expect(Date().timeIntervalSince(killed) < 17, "marked down after \(Date().timeIntervalSince(killed)) s")
        #expect(lab.states()[hostnames[1]] == "Ready")
        #expect(lab.lab(["start", "3"]).status == 0)
        #expect(DaemonFixture.eventually(20) { lab.states()[hostnames[2]] == "Ready" })

        // The manager restarts with its nodes and tokens; the workers reconnect by themselves.
        #expect(lab.lab(["stop", "1"]).status == 0)
        #expect(lab.lab(["start", "1"]).status == 0)
        #expect(lab.atoll(1, ["cluster", "join-token", "-q", "worker"]).stdout.contains(token))
        #expect(lab.states().count == 3, "\(lab.atoll(1, ["node", "ls"]).stdout)")
        #expect(DaemonFixture.eventually(20) { Set(hostnames).allSatisfy { lab.states()[$0] == "Ready" } })

        // CA rotation with a node down: the node that is up renews and stays ready; the one that
        // was down is refused afterwards, and joins again with the new token.
        #expect(lab.lab(["stop", "3"]).status == 0)
        #expect(DaemonFixture.eventually(20) { lab.states()[hostnames[2]] == "Down" })
        let rotation = lab.atoll(1, ["cluster", "ca", "--rotate"])
        #expect(rotation.status == 0, "\(rotation.stderr)")
        #expect(rotation.stdout.contains("CA rotated"), "\(rotation.stdout)")
        let newToken = lab.atoll(1, ["cluster", "join-token", "-q", "worker"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(newToken.hasPrefix("ATLTKN-1-") && newToken.split(separator: "-")[2] != parts[2], "\(newToken)")
        #expect(DaemonFixture.eventually(15) { lab.atoll(2, ["cluster", "info"]).stdout.contains("Connected: true") })
        #expect(lab.states()[hostnames[1]] == "Ready")
        #expect(
            DaemonFixture.eventually(15) {
                (try? String(contentsOfFile: "\(lab.directory)/host2/root/cluster/ca.pem", encoding: .utf8))?
                    .components(separatedBy: "BEGIN CERTIFICATE").count == 2
            }, "the worker trusts the new CA alone")
        let afterRotation = lab.remote(tlsDirectory: admin, ["node", "ls"])
        #expect(afterRotation.status == 0, "the rewritten admin bundle works: \(afterRotation.stderr)")
        #expect(lab.lab(["start", "3"]).status == 0)
        Thread.sleep(forTimeInterval: 6)
        #expect(lab.states()[hostnames[2]] == "Down", "a certificate of the old CA is refused")
        #expect(lab.atoll(3, ["cluster", "info"]).stdout.contains("Connected: false"))
        #expect(lab.atoll(3, ["cluster", "leave"]).status == 0)
        #expect(lab.atoll(1, ["node", "rm", hostnames[2]]).status == 0)
        // A rotated join token replaces the old one.
        let rotatedToken = lab.atoll(1, ["cluster", "join-token", "--rotate", "-q", "worker"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(rotatedToken.hasPrefix("ATLTKN-1-") && rotatedToken != newToken, "\(rotatedToken)")
        let stale = lab.atoll(3, ["cluster", "join", "--token", newToken, lab.manager])
        #expect(stale.status == 1)
        #expect(stale.stderr.contains("invalid join token"), "\(stale.stderr)")
        let rejoin = lab.atoll(3, ["cluster", "join", "--token", rotatedToken, lab.manager])
        #expect(rejoin.status == 0, "\(rejoin.stderr)")
        #expect(DaemonFixture.eventually(15) { lab.states()[hostnames[2]] == "Ready" })

        // Node updates, and removal: the removed node's certificate is refused from then on.
        let update = lab.atoll(1, ["node", "update", "--availability", "drain", "--label-add", "zone=b", hostnames[2]])
        #expect(update.status == 0, "\(update.stderr)")
        #expect(
            lab.atoll(1, ["node", "ls", "-q", "--filter", "label=zone=b"]).stdout.split(separator: "\n").count == 1)
        let notDown = lab.atoll(1, ["node", "rm", hostnames[2]])
        #expect(notDown.status == 1)
        #expect(notDown.stderr.contains("is ready"), "\(notDown.stderr)")
        #expect(lab.atoll(1, ["node", "rm", "--force", hostnames[2]]).status == 0)
        #expect(
            DaemonFixture.eventually(15) {
                lab.atoll(3, ["cluster", "info"]).stdout.contains("removed from the cluster")
            })
        #expect(lab.states()[hostnames[2]] == nil)

        // Leaving: a worker leaves; the manager only with --force.
        #expect(lab.atoll(2, ["cluster", "leave"]).status == 0)
        #expect(lab.atoll(2, ["cluster", "info"]).stdout.hasPrefix("Cluster: inactive"))
        #expect(!FileManager.default.fileExists(atPath: "\(lab.directory)/host2/root/cluster"))
        let managerLeave = lab.atoll(1, ["cluster", "leave"])
        #expect(managerLeave.status == 1)
        #expect(managerLeave.stderr.contains("--force"), "\(managerLeave.stderr)")
        #expect(lab.atoll(1, ["cluster", "leave", "--force"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(lab.directory)/host1/root/manager"))
    }
}
