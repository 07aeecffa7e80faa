import SwiftASN1
import X509

/// What a node may do in the cluster. A certificate's OU is `"atoll-" + rawValue`.
public enum ClusterRole: String, Sendable, CaseIterable {
    case worker, manager, admin

    /// The organizational unit a certificate for this role carries, `atoll-<role>`.
    public var organizationalUnit: String { CertificateIdentity.organizationalUnitPrefix + rawValue }
}

/// Who a certificate names: CN = nodeID, OU = "atoll-" + role, O = clusterID.
///
/// The certificate authority decides the identity when it issues a certificate; a CSR only proves
/// possession of the key. The manager authorizes callers by the identity in their certificate.
public struct CertificateIdentity: Sendable, Equatable, CustomStringConvertible {
    public var nodeID: String
    public var role: ClusterRole
    public var clusterID: String

    static let organizationalUnitPrefix = "atoll-"

    public init(nodeID: String, role: ClusterRole, clusterID: String) {
        self.nodeID = nodeID
        self.role = role
        self.clusterID = clusterID
    }

    /// nil for a certificate that does not name all three (or names one of them more than once).
    public init?(certificate: Certificate) {
        self.init(subject: certificate.subject)
    }

    /// nil for a name that does not carry exactly one CN, one OU of the form `atoll-<role>` and one O,
    /// all non-empty.
    public init?(subject: DistinguishedName) {
        guard let nodeID = subject.singleValue(of: .RDNAttributeType.commonName),
            let unit = subject.singleValue(of: .RDNAttributeType.organizationalUnitName),
            let clusterID = subject.singleValue(of: .RDNAttributeType.organizationName),
            unit.hasPrefix(Self.organizationalUnitPrefix),
            let role = ClusterRole(rawValue: String(unit.dropFirst(Self.organizationalUnitPrefix.count)))
        else { return nil }
        self.init(nodeID: nodeID, role: role, clusterID: clusterID)
    }

    /// The subject name a certificate for this identity carries: O, OU, CN (most significant first).
    public var distinguishedName: DistinguishedName {
        DistinguishedName([
            RelativeDistinguishedName(.init(type: .RDNAttributeType.organizationName, utf8String: clusterID)),
            RelativeDistinguishedName(
                .init(type: .RDNAttributeType.organizationalUnitName, utf8String: role.organizationalUnit)
            ),
            RelativeDistinguishedName(.init(type: .RDNAttributeType.commonName, utf8String: nodeID)),
        ])
    }

    public var description: String { "\(role.rawValue) \"\(nodeID)\" of cluster \"\(clusterID)\"" }
}

extension DistinguishedName {
    /// The one non-empty string value of attribute `type`; nil when it is absent, repeated, empty or
    /// not a string.
    func singleValue(of type: ASN1ObjectIdentifier) -> String? {
        let values = self.flatMap { $0 }.filter { $0.type == type }
        guard values.count == 1, let value = String(values[0].value), !value.isEmpty else { return nil }
        return value
    }
}
