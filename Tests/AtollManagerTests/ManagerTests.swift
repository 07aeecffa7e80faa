import AtollClusterPKI
import AtollClusterStore
import AtollCore
import Foundation
import Testing

@testable import AtollManager

/// The manager over a real store file and real certificates, without a transport.
@Suite struct ManagerTests {
    let directory: String
    let manager: Manager
    let description = NodeDescription(
        hostname: "manager-host", engineVersion: "0.1", os: "linux", architecture: "amd64", cpus: 2,
        memoryBytes: 1 << 30)

    init() throws {
        directory = NSTemporaryDirectory() + "atoll-manager-\(UUID().uuidString)"
        manager = try Manager.create(
            storePath: "\(directory)/cluster.db", description: description, address: "10.0.0.1",
            managerAddress: "10.0.0.1:2377", certificateAddresses: ["10.0.0.1"], key: KeyPair.generate()
        ).0
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: directory) }

    func joinWorker(_ hostname: String) throws -> Node {
        let key = KeyPair.generate()
        var worker = description
        worker.hostname = hostname
        let (node, certificate) = try manager.join(
            token: try manager.tokens().worker, csrPEM: try key.certificateSigningRequest(commonName: hostname),
            description: worker, address: "10.0.0.2")
        #expect(CertificateIdentity(certificate: certificate)?.role == .worker)
        #expect(manager.ca.validates(certificate))
        return node
    }

    @Test func aWorkerJoinsWithTheWorkerTokenAndGetsACertificateOfTheCluster() throws {
        defer { cleanUp() }
        let node = try joinWorker("worker-1")
        #expect(node.role == .worker)
        #expect(try manager.listNodes(filters: []).map(\.hostname) == ["manager-host", "worker-1"])
        #expect(try manager.listNodes(filters: ["role=worker"]).map(\.id) == [node.id])
        #expect(try manager.node("worker-1").id == node.id)
        #expect(try manager.node("self").id == manager.nodeID)
    }

    @Test func aNodeJoiningWithTheManagerTokenBecomesAManagerWithItsClusterAddress() throws {
        defer { cleanUp() }
        let key = KeyPair.generate()
        let csr = try key.certificateSigningRequest(commonName: "manager-2")
        let token = try manager.tokens().manager
        #expect {
            _ = try manager.join(token: token, csrPEM: csr, description: description, address: "10.0.0.5")
        } throws: { ($0 as? AtollError)?.message.contains("the address it serves the cluster port on") == true }
        let (node, certificate) = try manager.join(
            token: token, csrPEM: csr, description: description, address: "10.0.0.5",
            managerAddress: "10.0.0.5:2377")
        #expect(node.role == .manager)
        #expect(node.managerAddress == "10.0.0.5:2377")
        #expect(CertificateIdentity(certificate: certificate)?.role == .manager)
        #expect(try manager.listNodes(filters: ["role=manager"]).count == 2)
        #expect(try manager.removableNode(node.id, force: true).id == node.id)
        #expect { _ = try manager.removableNode(manager.nodeID, force: true) } throws: {
            ($0 as? AtollError)?.message.contains("leads the cluster") == true
        }
    }

    @Test func tokensThatAreWrongRotatedOrOfAnotherClusterAreRefused() throws {
        defer { cleanUp() }
        let csr = try KeyPair.generate().certificateSigningRequest(commonName: "x")
        let worker = try JoinToken(parsing: try manager.tokens().worker)
        let wrongSecret = JoinToken(caFingerprint: worker.caFingerprint, secret: JoinToken.generateSecret())
        let otherCluster = JoinToken(caFingerprint: String(repeating: "ab", count: 32), secret: worker.secret)
        for (token, message) in [
            (wrongSecret.description, "invalid join token"), (otherCluster.description, "another cluster"),
            ("SWMTKN-1-nonsense", "invalid join token"),
        ] {
            #expect {
                _ = try manager.join(token: token, csrPEM: csr, description: description, address: "10.0.0.3")
            } throws: { "\($0)".contains(message) }
        }
        try manager.rotateToken(.worker)
        #expect(throws: AtollError.self) {
            _ = try manager.join(token: worker.description, csrPEM: csr, description: description, address: "10.0.0.3")
        }
        #expect(try manager.listNodes(filters: []).count == 1, "nothing was registered")
    }

    @Test func aNodeThatMissesThreeHeartbeatsIsMarkedDownAndAHeartbeatMakesItReady() throws {
        defer { cleanUp() }
        let node = try joinWorker("worker-1")
        _ = try manager.heartbeat(nodeID: node.id, description: nil, address: nil)
        #expect(try manager.node(node.id).state == .ready)
        let period = manager.heartbeatPeriod
        #expect(try manager.markSilentNodesDown(now: Date().addingTimeInterval(period * 2)).isEmpty)
        #expect(try manager.markSilentNodesDown(now: Date().addingTimeInterval(period * 3 + 1)) == [node.id])
        #expect(try manager.node(node.id).state == .down)
        #expect(try manager.node("self").state == .ready, "the manager does not mark itself down")
        _ = try manager.heartbeat(nodeID: node.id, description: nil, address: nil)
        #expect(try manager.node(node.id).state == .ready)
    }

    @Test func aRemovedNodeIsRefusedAndOnlyDownNodesGoWithoutForce() throws {
        defer { cleanUp() }
        let node = try joinWorker("worker-1")
        _ = try manager.heartbeat(nodeID: node.id, description: nil, address: nil)
        #expect(throws: AtollError.self) { try manager.removeNode("worker-1", force: false) }
        #expect(throws: AtollError.self) { try manager.removeNode("self", force: true) }
        try manager.removeNode("worker-1", force: true)
        let identity = CertificateIdentity(nodeID: node.id, role: .worker, clusterID: manager.clusterID)
        #expect { try manager.authorize(identity, roles: [.worker]) } throws: { "\($0)".contains("removed") }
        #expect { _ = try manager.heartbeat(nodeID: node.id, description: nil, address: nil) } throws: {
            "\($0)".contains("removed")
        }
    }

    @Test func rolesAndClustersAreCheckedForEveryCaller() throws {
        defer { cleanUp() }
        let node = try joinWorker("worker-1")
        let worker = CertificateIdentity(nodeID: node.id, role: .worker, clusterID: manager.clusterID)
        let admin = CertificateIdentity(nodeID: "admin-x", role: .admin, clusterID: manager.clusterID)
        let foreign = CertificateIdentity(nodeID: node.id, role: .worker, clusterID: "another")
        #expect(try manager.authorize(admin, roles: [.admin, .manager]).node == nil)
        #expect(try manager.authorize(worker, roles: [.worker]).node?.id == node.id)
        #expect { try manager.authorize(worker, roles: [.admin, .manager]) } throws: {
            "\($0)".contains("a worker certificate cannot call this")
        }
        #expect { try manager.authorize(foreign, roles: [.worker]) } throws: { "\($0)".contains("another cluster") }
        #expect(throws: AtollError.self) { try manager.authorize(nil, roles: [.worker]) }
    }

    @Test func labelsAndAvailabilityAreUpdatedAndFiltered() throws {
        defer { cleanUp() }
        _ = try joinWorker("worker-1")
        let updated = try manager.updateNode(
            "worker-1", availability: .drain, labelsToAdd: ["zone=a", "ssd"], labelsToRemove: [])
        #expect(updated.availability == .drain)
        #expect(updated.labels == ["zone": "a", "ssd": ""])
        #expect(try manager.listNodes(filters: ["label=zone=a"]).map(\.hostname) == ["worker-1"])
        #expect(try manager.listNodes(filters: ["label=ssd", "availability=drain"]).count == 1)
        #expect(throws: AtollError.self) { _ = try manager.listNodes(filters: ["colour=red"]) }
        #expect(throws: AtollError.self) {
            _ = try manager.updateNode("worker-1", availability: nil, labelsToAdd: [], labelsToRemove: ["nope"])
        }
    }

    @Test func theStateSurvivesAReopen() throws {
        defer { cleanUp() }
        let node = try joinWorker("worker-1")
        let tokens = try manager.tokens()
        let reopened = try Manager(storePath: "\(directory)/cluster.db", nodeID: manager.nodeID)
        #expect(try reopened.tokens() == tokens)
        #expect(try reopened.node(node.id).hostname == "worker-1")
        #expect(reopened.ca.fingerprint == manager.ca.fingerprint)
    }

    @Test func aRotationCompletesOnlyWhenEveryNodeThatIsUpPresentsACertificateOfTheNewCA() throws {
        defer { cleanUp() }
        let key = KeyPair.generate()
        let (node, old) = try manager.join(
            token: try manager.tokens().worker, csrPEM: try key.certificateSigningRequest(commonName: "w"),
            description: description, address: "10.0.0.2")
        #expect(
            try !manager.heartbeat(nodeID: node.id, description: nil, address: nil, presentedCertificate: old)
                .renewCertificate)
        let oldToken = try manager.tokens().worker
        try manager.rotateCA()
        #expect(throws: AtollError.self) { try manager.rotateCA() }
        #expect(
            try manager.heartbeat(nodeID: node.id, description: nil, address: nil, presentedCertificate: old)
                .renewCertificate)
        #expect(try manager.rotationProgress()! == (0, 1))
        let identity = try #require(CertificateIdentity(certificate: old))
        let renewed = try manager.renew(identity, csrPEM: try key.certificateSigningRequest(commonName: "w"))
        #expect(try manager.rotationProgress()! == (0, 1), "signing is not enough: the node must present it")
        #expect(try !manager.completeRotationIfRenewed())
        let answer = try manager.heartbeat(
            nodeID: node.id, description: nil, address: nil, presentedCertificate: renewed)
        #expect(!answer.renewCertificate)
        #expect(answer.trustedRoots.count == 2)
        #expect(try manager.completeRotationIfRenewed())
        #expect(manager.pendingCA == nil)
        #expect(manager.ca.validates(renewed) && !manager.ca.validates(old))
        #expect(try manager.tokens().worker != oldToken)
        #expect {
            _ = try manager.join(
                token: oldToken, csrPEM: try key.certificateSigningRequest(commonName: "x"), description: description,
                address: "10.0.0.3")
        } throws: {
            "\($0)".contains("another cluster")
        }
    }
}
