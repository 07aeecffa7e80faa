import Foundation
import Testing

/// Three managers and a worker on the network-namespace lab (lab 2): the managers replicate the
/// cluster's state (Raft over the cluster port), any of them answers the CLI, and the cluster
/// keeps working when its leader dies.
@Suite(.serialized) struct ClusterManagersTests {
    struct Lab {
        let directory = "/tmp/atoll-it-lab-\(UUID().uuidString.prefix(6).lowercased())"
        let script = "\(DaemonFixture.packageRoot)/deploy/lab"

        func address(_ host: Int) -> String { "10.213.2.\(10 + host):2377" }

        func lab(_ arguments: [String]) -> DaemonFixture.Result {
            DaemonFixture.run(
                script, arguments,
                environment: [
                    "ATOLL_LAB": directory, "ATOLL_LAB_INDEX": "2", "ATOLLD": "\(DaemonFixture.binDirectory)/atolld",
                    "ATOLL": "\(DaemonFixture.binDirectory)/atoll",
                ])
        }

        func atoll(_ host: Int, _ arguments: [String]) -> DaemonFixture.Result {
            DaemonFixture.run(
                "\(DaemonFixture.binDirectory)/atoll", arguments,
                environment: ["ATOLL_HOST": "unix://\(directory)/host\(host)/atolld.sock"])
        }

        /// `node ls` on `host`: hostname → (status, manager status).
        func nodes(on host: Int) -> [String: (status: String, manager: String)] {
            var rows: [String: (String, String)] = [:]
            for line in atoll(host, ["node", "ls"]).stdout.split(separator: "\n").dropFirst() {
                let columns = line.split(separator: " ", omittingEmptySubsequences: true).filter { $0 != "*" }
                guard columns.count >= 6 else { continue }
                // ID HOSTNAME STATUS AVAILABILITY ROLE [MANAGER STATUS] ENGINE ADDRESS
                rows[String(columns[1])] = (String(columns[2]), columns[4] == "manager" ? String(columns[5]) : "")
            }
            return rows
        }

        /// The lab host whose manager leads, as `host`'s `node ls` says.
        func leader(seenFrom host: Int) -> Int? {
            nodes(on: host).first { $0.value.manager == "Leader" }.flatMap { Int($0.key.dropFirst("lab-host".count)) }
        }
    }

    @Test func threeManagersReplicateTheStateAndElectANewLeaderWhenTheLeaderDies() throws {
        let lab = Lab()
        let up = lab.lab(["up", "4"])
        defer {
            let down = lab.lab(["down"])
            #expect(down.status == 0, "\(down.stderr)")
        }
        try #require(up.status == 0, "\(up.stdout)\(up.stderr)")
        let hostnames = (1...4).map { "lab-host\($0)" }

        try #require(lab.atoll(1, ["cluster", "init", "--advertise-addr", lab.address(1)]).status == 0)
        let managerToken = lab.atoll(1, ["cluster", "join-token", "-q", "manager"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let workerToken = lab.atoll(1, ["cluster", "join-token", "-q", "worker"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for host in 2...3 {
            let join = lab.atoll(host, ["cluster", "join", "--token", managerToken, lab.address(1)])
            #expect(join.status == 0, "\(join.stderr)")
            #expect(join.stdout.contains("joined the cluster as a manager"), "\(join.stdout)")
        }
        // A worker joins through a manager that does not lead: the join goes on to the leader.
        let workerJoin = lab.atoll(4, ["cluster", "join", "--token", workerToken, lab.address(3)])
        #expect(workerJoin.status == 0, "\(workerJoin.stderr)")
        #expect(workerJoin.stdout.contains("as a worker"), "\(workerJoin.stdout)")

        // Every manager answers with the same, replicated, list: one leader, two reachable.
        for host in 1...3 {
            #expect(
                DaemonFixture.eventually(20) {
                    let nodes = lab.nodes(on: host)
                    return Set(hostnames).allSatisfy { nodes[$0]?.status == "Ready" }
                        && nodes.values.filter { $0.manager == "Leader" }.count == 1
                        && nodes.values.filter { $0.manager == "Reachable" }.count == 2
                }, "host \(host): \(lab.atoll(host, ["node", "ls"]).stdout)\(lab.atoll(host, ["node", "ls"]).stderr)")
        }
        #expect(lab.leader(seenFrom: 2) == 1)
        let info = lab.atoll(2, ["cluster", "info"]).stdout
        #expect(info.contains("Role: manager") && info.contains("Managers: \(lab.address(1))"), "\(info)")

        // A change made through a manager that does not lead is on every manager.
        let update = lab.atoll(3, ["node", "update", "--label-add", "zone=a", hostnames[3]])
        #expect(update.status == 0, "\(update.stderr)")
        #expect(
            lab.atoll(1, ["node", "inspect", "-f", "{{.Spec.Labels.zone}}", hostnames[3]]).stdout == "a\n")
        #expect(
            lab.atoll(2, ["node", "ls", "-q", "--filter", "label=zone=a"]).stdout.split(separator: "\n").count == 1)

        // The admin bundle works against any manager.
        let admin = "\(lab.directory)/host1/root/cluster/admin"
        let remote = DaemonFixture.run(
            "\(DaemonFixture.binDirectory)/atoll", ["-H", "tcp://\(lab.address(2))", "--tls-dir", admin, "node", "ls"])
        #expect(remote.status == 0 && hostnames.allSatisfy { remote.stdout.contains($0) }, "\(remote.stderr)")

        // The leader dies (SIGKILL): another manager leads within seconds, with the state intact;
        // the worker follows it; the dead manager is marked down and unreachable.
        #expect(lab.lab(["stop", "1"]).status == 0)
        let killed = Date()
        #expect(DaemonFixture.eventually(20) { [2, 3].contains(lab.leader(seenFrom: 2) ?? 0) })
        #expect(Date().timeIntervalSince(killed) < 12, "a new leader after \(Date().timeIntervalSince(killed)) s")
        let newLeader = try #require(lab.leader(seenFrom: 3))
        #expect(lab.atoll(newLeader, ["node", "inspect", "-f", "{{.Spec.Labels.zone}}", hostnames[3]]).stdout == "a\n")
        #expect(
            DaemonFixture.eventually(30) {
                let nodes = lab.nodes(on: 2)
                return nodes[hostnames[0]]?.status == "Down" && nodes[hostnames[0]]?.manager == "Unreachable"
            }, "\(lab.atoll(2, ["node", "ls"]).stdout)")
        #expect(lab.nodes(on: 3)[hostnames[3]]?.status == "Ready", "\(lab.atoll(3, ["node", "ls"]).stdout)")
        #expect(lab.atoll(3, ["cluster", "join-token", "-q", "worker"]).stdout.contains(workerToken))
        let drained = lab.atoll(2, ["node", "update", "--availability", "drain", hostnames[3]])
        #expect(drained.status == 0, "two managers of three still make a quorum: \(drained.stderr)")
        // With one manager down, another may not leave: the last two could not agree.
        let survivor = [2, 3].first { $0 != newLeader } ?? 2
        let stranding = lab.atoll(survivor, ["cluster", "leave", "--force"])
        #expect(stranding.status == 1)
        #expect(stranding.stderr.contains("bring the others back first"), "\(stranding.stderr)")
        #expect(lab.atoll(survivor, ["cluster", "info"]).stdout.contains("Role: manager"))

        // The old leader comes back as a follower and catches up.
        #expect(lab.lab(["start", "1"]).status == 0)
        #expect(
            DaemonFixture.eventually(30) {
                let nodes = lab.nodes(on: 1)
                return nodes[hostnames[0]]?.status == "Ready" && nodes[hostnames[0]]?.manager == "Reachable"
            }, "\(lab.atoll(1, ["node", "ls"]).stdout)\(lab.atoll(1, ["node", "ls"]).stderr)")
        #expect(
            lab.atoll(1, ["node", "inspect", "-f", "{{.Spec.Availability}}", hostnames[3]]).stdout == "drain\n")

        // A CA rotation started through a manager that does not lead: every node renews (the
        // managers serve their port with the new certificate), and the admin bundle is rewritten.
        let leaderNow = lab.leader(seenFrom: 1)
        let follower: Int = [1, 2, 3].first(where: { Optional($0) != leaderNow }) ?? 1
        let rotation = lab.atoll(follower, ["cluster", "ca", "--rotate"])
        #expect(rotation.status == 0 && rotation.stdout.contains("CA rotated"), "\(rotation.stdout)\(rotation.stderr)")
        // Managers trust both CAs while it runs, so the leader keeps reaching the others.
        #expect(lab.leader(seenFrom: follower) == leaderNow, "the leader changed during the rotation")
        let fingerprint = lab.atoll(1, ["cluster", "ca", "-q"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(fingerprint.count == 64, "\(fingerprint)")
        #expect(
            DaemonFixture.eventually(15) {
                DaemonFixture.shell(
                    "openssl x509 -in \(admin)/ca.pem -noout -fingerprint -sha256 | tr -d : | tr A-F a-f"
                )
                .stdout.contains(fingerprint)
            }, "the admin bundle holds the new CA")
        // The leader serves a certificate of the new CA within its next upkeep (half a second).
        for host in 1...3 {
            var remote = DaemonFixture.Result(status: -1, stdout: "", stderr: "")
            #expect(
                DaemonFixture.eventually(10) {
                    remote = DaemonFixture.run(
                        "\(DaemonFixture.binDirectory)/atoll",
                        ["-H", "tcp://\(lab.address(host))", "--tls-dir", admin, "node", "ls", "-q"])
                    return remote.stdout.split(separator: "\n").count == 4
                }, "manager \(host): \(remote.stderr)")
        }
        #expect(DaemonFixture.eventually(15) { lab.nodes(on: 2).values.allSatisfy { $0.status == "Ready" } })

        // Managers leave (only with --force): first the leader, then one that does not lead; the
        // last one carries on alone, and the worker follows whoever leads.
        let leading = try #require(lab.leader(seenFrom: 1))
        // Its certificate, kept: once it has left, no manager answers it.
        let kept = NSTemporaryDirectory() + "atoll-it-removed-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: kept) }
        try FileManager.default.createDirectory(atPath: kept, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(admin)/ca.pem", toPath: "\(kept)/ca.pem")
        for (from, to) in [("node.pem", "cert.pem"), ("node-key.pem", "key.pem")] {
            try FileManager.default.copyItem(
                atPath: "\(lab.directory)/host\(leading)/root/cluster/\(from)", toPath: "\(kept)/\(to)")
        }
        let refused = lab.atoll(leading, ["cluster", "leave"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("one of the cluster's 3 managers"), "\(refused.stderr)")
        let leaderLeft = lab.atoll(leading, ["cluster", "leave", "--force"])
        #expect(leaderLeft.status == 0, "\(leaderLeft.stderr)")
        let remaining = [1, 2, 3].filter { $0 != leading }
        #expect(
            DaemonFixture.eventually(20) {
                let nodes = lab.nodes(on: remaining[0])
                return nodes.count == 3 && nodes[hostnames[leading - 1]] == nil
                    && nodes.values.filter { $0.manager == "Leader" }.count == 1
            }, "\(lab.atoll(remaining[0], ["node", "ls"]).stdout)")
        for host in remaining {
            let removed = DaemonFixture.run(
                "\(DaemonFixture.binDirectory)/atoll",
                ["-H", "tcp://\(lab.address(host))", "--tls-dir", kept, "node", "ls"])
            #expect(removed.status == 1)
            #expect(removed.stderr.contains("was removed from the cluster"), "manager \(host): \(removed.stderr)")
        }
        let last = try #require(lab.leader(seenFrom: remaining[0]))
        let other = remaining.first(where: { $0 != last }) ?? remaining[0]
        #expect(lab.atoll(other, ["cluster", "leave", "--force"]).status == 0)
        #expect(
            DaemonFixture.eventually(20) {
                let nodes = lab.nodes(on: last)
                return nodes.count == 2 && nodes[hostnames[3]]?.status == "Ready"
            }, "\(lab.atoll(last, ["node", "ls"]).stdout)")
        let alone = lab.atoll(last, ["node", "update", "--availability", "active", hostnames[3]])
        #expect(alone.status == 0, "one manager of one is a quorum: \(alone.stderr)")
        #expect(lab.atoll(last, ["cluster", "info"]).stdout.contains("Managers: \(lab.address(last))"))
    }
}
