import AtollClusterPKI
import AtollCore
import Foundation
import Glibc
import X509

/// What this host is in a cluster, as kept in ROOT/cluster/state.json.
struct ClusterMembership: Codable, Sendable, Equatable {
    enum Role: String, Codable, Sendable { case manager, worker }
    var clusterID: String
    var nodeID: String
    var role: Role
    /// IP:PORT of the manager (for a manager: the address it advertises).
    var managerAddress: String
    /// A manager's listen address (IP:PORT).
    var listenAddress: String?
    /// Where a manager keeps the admin bundle (rewritten when the CA rotates).
    var adminDirectory: String?
    /// The managers' cluster addresses as last heard, the leader's first: where the agent goes
    /// when the one it talks to is away.
    var managers: [String]?
    /// A manager: its store has held the cluster's state (an empty one then means it was lost).
    var replicated: Bool?

    /// Where to look for the leader: the addresses last heard of, then the one joined through.
    var managerCandidates: [String] {
        var seen = Set<String>()
        return ((managers ?? []) + [managerAddress]).filter { seen.insert($0).inserted }
    }
}

/// This host's cluster files under ROOT/cluster: state.json, the CA's certificate (ca.pem), the
/// node's certificate (node.pem) and key (node-key.pem, 0600). Each is replaced atomically; the
/// directory is 0700. A manager's store lives apart, in ROOT/manager/cluster.db.
struct ClusterFiles: Sendable {
    let directory: String
    let managerStore: String

    init(root: String) {
        directory = "\(root)/cluster"
        managerStore = "\(root)/manager/cluster.db"
    }

    var statePath: String { "\(directory)/state.json" }
    var caPath: String { "\(directory)/ca.pem" }
    var certificatePath: String { "\(directory)/node.pem" }
    var keyPath: String { "\(directory)/node-key.pem" }

    func membership() throws -> ClusterMembership? {
        guard FileSystem.exists(statePath) else { return nil }
        do {
            return try JSONDecoder().decode(ClusterMembership.self, from: Data(try FileSystem.readFile(statePath)))
        } catch {
            throw AtollError.dataLoss("cannot read the cluster state \(statePath): \(error)")
        }
    }

    func credentials() throws -> NodeCredentials {
        do {
            return NodeCredentials(
                key: try KeyPair(pem: String(decoding: try FileSystem.readFile(keyPath), as: UTF8.self)),
                certificate: try Certificate(
                    pemEncoded: String(decoding: try FileSystem.readFile(certificatePath), as: UTF8.self)),
                roots: try Certificate.certificates(
                    fromPEMBundle: String(decoding: try FileSystem.readFile(caPath), as: UTF8.self)))
        } catch {
            throw AtollError.dataLoss("cannot read this node's certificates in \(directory): \(error)")
        }
    }

    /// Rewrites the state alone (the managers' addresses changed).
    func saveMembership(_ membership: ClusterMembership) throws {
        try FileSystem.writeFileAtomically(statePath, Array(try JSONEncoder().encode(membership)), mode: 0o600)
    }

    /// Writes the key, certificates and then the state (whose presence says the rest is there).
    func save(_ membership: ClusterMembership, _ credentials: NodeCredentials) throws {
        try Syscall.mkdirAll(directory, mode: 0o700)
        try FileSystem.writeFileAtomically(keyPath, Array(credentials.key.pem.utf8), mode: 0o600)
        try saveCertificate(credentials.certificate)
        try saveRoots(credentials.roots)
        try FileSystem.writeFileAtomically(
            statePath, Array(try JSONEncoder().encode(membership)), mode: 0o600)
    }

    /// ca.pem: the roots to trust for the manager, one PEM after the other.
    func saveRoots(_ roots: [Certificate]) throws {
        let bundle = try roots.map { try $0.serializeAsPEM().pemString + "\n" }.joined()
        try FileSystem.writeFileAtomically(caPath, Array(bundle.utf8))
    }

    func saveCertificate(_ certificate: Certificate) throws {
        try FileSystem.writeFileAtomically(certificatePath, Array(try certificate.serializeAsPEM().pemString.utf8))
    }

    /// Forgets the cluster: this node's files and, on a manager, its store.
    func remove() throws {
        try FileSystem.removeTree(directory)
        try FileSystem.removeTree((managerStore as NSString).deletingLastPathComponent)
    }
}

/// A node's key, its certificate, and the roots it trusts for the manager: the cluster's CA,
/// and the next one while a rotation runs.
struct NodeCredentials: Sendable {
    var key: KeyPair
    var certificate: Certificate
    var roots: [Certificate]

    /// Whether `leaf` is a manager's certificate from one of the roots.
    func trustsManager(_ leaf: Certificate) -> Bool {
        roots.contains { (try? CertificateAuthorityCheck(certificate: $0))?.validatesManager(leaf) ?? false }
    }
}
