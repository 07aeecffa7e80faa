import Foundation

/// The cluster itself: one row of the store, created when the first manager initialises it.
public struct ClusterInfo: Codable, Sendable, Equatable {
    public var id: String
    /// Set by the store: 1 at creation, bumped by every write.
    public var version: Int64
    /// Set by the store when the cluster is created.
    public var createdAt: Date
    /// Set by the store on every write.
    public var updatedAt: Date
    /// The cluster's root CA certificate, PEM.
    public var caCertificatePEM: String
    /// The root CA's private key, PEM. The store file is created with mode 0600 for its sake.
    public var caKeyPEM: String
    /// The secret in join tokens that make a node a worker.
    public var workerTokenSecret: String
    /// The secret in join tokens that make a node a manager.
    public var managerTokenSecret: String
    /// How often nodes report to the manager.
    public var heartbeatPeriodSeconds: Double
    /// While a CA rotation runs: the new CA (certificate and key, PEM), which signs every new
    /// certificate and becomes the CA once every node that is up holds one; empty otherwise.
    public var pendingCACertificatePEM = ""
    public var pendingCAKeyPEM = ""

    /// A cluster description; `version`, `createdAt` and `updatedAt` start at zero and the epoch, and
    /// the store sets them when the cluster is written.
    public init(
        id: String, caCertificatePEM: String, caKeyPEM: String, workerTokenSecret: String,
        managerTokenSecret: String, heartbeatPeriodSeconds: Double = 5
    ) {
        self.id = id
        self.version = 0
        self.createdAt = Date(timeIntervalSince1970: 0)
        self.updatedAt = Date(timeIntervalSince1970: 0)
        self.caCertificatePEM = caCertificatePEM
        self.caKeyPEM = caKeyPEM
        self.workerTokenSecret = workerTokenSecret
        self.managerTokenSecret = managerTokenSecret
        self.heartbeatPeriodSeconds = heartbeatPeriodSeconds
    }

    enum CodingKeys: String, CodingKey {
        case id, version, createdAt, updatedAt, caCertificatePEM, caKeyPEM, workerTokenSecret, managerTokenSecret
        case heartbeatPeriodSeconds, pendingCACertificatePEM, pendingCAKeyPEM
    }
}

extension ClusterInfo {
    /// Decodes leniently: a field that an older version of Atoll did not write takes its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id),
            caCertificatePEM: try c.decodeIfPresent(String.self, forKey: .caCertificatePEM) ?? "",
            caKeyPEM: try c.decodeIfPresent(String.self, forKey: .caKeyPEM) ?? "",
            workerTokenSecret: try c.decodeIfPresent(String.self, forKey: .workerTokenSecret) ?? "",
            managerTokenSecret: try c.decodeIfPresent(String.self, forKey: .managerTokenSecret) ?? "",
            heartbeatPeriodSeconds: try c.decodeIfPresent(Double.self, forKey: .heartbeatPeriodSeconds) ?? 5)
        version = try c.decodeIfPresent(Int64.self, forKey: .version) ?? 0
        createdAt = try c.decodeIfPresent(Date.self, forKey: .createdAt) ?? createdAt
        updatedAt = try c.decodeIfPresent(Date.self, forKey: .updatedAt) ?? updatedAt
        pendingCACertificatePEM = try c.decodeIfPresent(String.self, forKey: .pendingCACertificatePEM) ?? ""
        pendingCAKeyPEM = try c.decodeIfPresent(String.self, forKey: .pendingCAKeyPEM) ?? ""
    }
}
