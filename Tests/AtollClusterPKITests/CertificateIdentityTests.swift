import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

@testable import AtollClusterPKI

@Suite("Certificate identity")
struct CertificateIdentityTests {
    /// A self-signed certificate with an arbitrary subject, to feed init(certificate:).
    func certificate(subject: [(ASN1ObjectIdentifier, String)]) throws -> Certificate {
        let key = P256.Signing.PrivateKey()
        let name = DistinguishedName(subject.map { RelativeDistinguishedName(.init(type: $0.0, utf8String: $0.1)) })
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: Date(),
            notValidAfter: Date() + 3600,
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: Certificate.Extensions(),
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
    }

    @Test("every role round-trips through a certificate subject")
    func everyRoleRoundTrips() throws {
        for role in ClusterRole.allCases {
            let identity = CertificateIdentity(nodeID: "node-\(role)", role: role, clusterID: "c1")
            let certificate = try certificate(subject: [
                (.RDNAttributeType.organizationName, "c1"),
                (.RDNAttributeType.organizationalUnitName, "atoll-\(role.rawValue)"),
                (.RDNAttributeType.commonName, "node-\(role)"),
            ])
            #expect(CertificateIdentity(certificate: certificate) == identity)
            #expect(CertificateIdentity(subject: identity.distinguishedName) == identity)
            #expect(role.organizationalUnit == "atoll-\(role.rawValue)")
        }
    }

    @Test("a certificate that does not name node, role and cluster exactly once has no identity")
    func incompleteSubjectsHaveNoIdentity() throws {
        let cn = (ASN1ObjectIdentifier.RDNAttributeType.commonName, "n1")
        let ou = (ASN1ObjectIdentifier.RDNAttributeType.organizationalUnitName, "atoll-worker")
        let o = (ASN1ObjectIdentifier.RDNAttributeType.organizationName, "c1")
        let subjects: [[(ASN1ObjectIdentifier, String)]] = [
            [ou, o],
            [cn, o],
            [cn, ou],
            [],
            [cn, (ou.0, "worker"), o],
            [cn, (ou.0, "atoll-king"), o],
            [cn, (ou.0, "atoll-"), o],
            [(cn.0, ""), ou, o],
            [cn, ou, (o.0, "")],
            [cn, cn, ou, o],
            [cn, ou, (ou.0, "atoll-admin"), o],
        ]
        for subject in subjects {
            #expect(CertificateIdentity(certificate: try certificate(subject: subject)) == nil, "\(subject)")
        }
        // The root CA names a cluster but no role.
        let ca = try CertificateAuthority.create(clusterID: "c1")
        #expect(CertificateIdentity(certificate: ca.certificate) == nil)
    }
}
