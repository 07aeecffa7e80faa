import AtollClient
import AtollClusterPKI
import AtollClusterStore
import AtollCore
import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import NIOSSL
import SwiftASN1
import Synchronization
import X509

/// The mutual TLS of the cluster port. The server asks every client for a certificate and
/// accepts any it can check the key of: one the cluster CA signed is "validated" (its chain
/// reaches the handlers, which authorize by the identity in it); any other (a joining node's
/// throwaway one, a foreign or expired one) gets through the handshake unvalidated, which only
/// the CA service's join call accepts. A client without a certificate, or without TLS, is
/// refused in the handshake.
enum ClusterTLS {
    /// The default cluster port (Swarm's).
    static let defaultPort = 2377

    static func serverSecurity(
        _ credentials: NodeCredentials, authorities: @escaping @Sendable () -> [CertificateAuthorityCheck]
    )
        throws -> HTTP2ServerTransport.Posix.TransportSecurity
    {
        // The CA that signed the leaf goes with it: a joining node pins its token's CA in the chain.
        let issuer =
            credentials.roots.first {
                (try? CertificateAuthorityCheck(certificate: $0))?.validates(credentials.certificate) ?? false
            }
            ?? credentials.roots.first
        let chain = try ([credentials.certificate] + (issuer.map { [$0] } ?? [])).map {
            TLSConfig.CertificateSource.bytes(Array(try $0.serializeAsPEM().pemString.utf8), format: .pem)
        }
        return .mTLS(certificateChain: chain, privateKey: .bytes(Array(credentials.key.pem.utf8), format: .pem)) {
            $0.clientCertificateVerification = .noHostnameVerification
            $0.trustRoots = .certificates([chain[1]])
            $0.customVerificationCallback = { presented, promise in
                guard let leaf = presented.first.flatMap({ try? Certificate(derEncoded: $0.toDERBytes()) }) else {
                    promise.succeed(.failed)
                    return
                }
                let validated = authorities().contains { $0.validates(leaf) }
                promise.succeed(
                    .certificateVerified(VerificationMetadata(validated ? ValidatedCertificateChain(presented) : nil)))
            }
        }
    }

    /// A node's (or an admin's) client security: its certificate, and a server whose leaf the
    /// cluster CA signed (the address is not checked: managers are known by the CA, as in Swarm).
    static func clientSecurity(_ credentials: NodeCredentials) throws -> HTTP2ClientTransport.Posix.TransportSecurity {
        try clientSecurity(
            certificate: credentials.certificate, key: credentials.key,
            verify: { presented in credentials.trustsManager(presented[0]) })
    }

    /// For joining: a throwaway self-signed certificate, and a server whose chain holds the CA
    /// the token pins (by fingerprint) and whose leaf that CA signed.
    static func joiningSecurity(pinning fingerprint: String) throws -> (
        HTTP2ClientTransport.Posix.TransportSecurity, pinned: PinnedCertificate
    ) {
        let key = KeyPair.generate()
        let pinned = PinnedCertificate()
        let certificate = try selfSigned(key, commonName: "atoll-joining-node")
        let security = try clientSecurity(certificate: certificate, key: key) { presented in
            guard
                let ca = presented.first(where: { (try? CertificateAuthorityCheck.fingerprint(of: $0)) == fingerprint }
                ),
                let check = try? CertificateAuthorityCheck(certificate: ca), check.validatesManager(presented[0])
            else { return false }
            pinned.value.withLock { $0 = ca }
            return true
        }
        return (security, pinned)
    }

    private static func clientSecurity(
        certificate: Certificate, key: KeyPair, verify: @escaping @Sendable ([Certificate]) -> Bool
    ) throws -> HTTP2ClientTransport.Posix.TransportSecurity {
        let own = TLSConfig.CertificateSource.bytes(
            Array(try certificate.serializeAsPEM().pemString.utf8), format: .pem)
        return .mTLS(
            certificateChain: [own],
            privateKey: .bytes(Array(key.pem.utf8), format: .pem)
        ) {
            $0.serverCertificateVerification = .noHostnameVerification
            // Checked by the callback; NIOSSL wants roots all the same.
            $0.trustRoots = .certificates([own])
            $0.customVerificationCallback = { presented, promise in
                let certificates = presented.compactMap { try? Certificate(derEncoded: $0.toDERBytes()) }
                guard !certificates.isEmpty, certificates.count == presented.count, verify(certificates) else {
                    promise.succeed(.failed)
                    return
                }
                promise.succeed(.certificateVerified(VerificationMetadata(ValidatedCertificateChain(presented))))
            }
        }
    }

    /// A self-signed certificate for `key`, valid for a day.
    static func selfSigned(_ key: KeyPair, commonName: String) throws -> Certificate {
        let name = try DistinguishedName { CommonName(commonName) }
        let now = Date()
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.privateKey.publicKey),
            notValidBefore: now.addingTimeInterval(-60), notValidAfter: now.addingTimeInterval(86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                try ExtendedKeyUsage([.clientAuth])
            }, issuerPrivateKey: .init(key.privateKey))
    }

    /// "IP:PORT", "[IPv6]:PORT", "HOST:PORT" or "IP" (the default port) as a gRPC target.
    static func target(_ address: String) throws -> any ResolvableTarget {
        let (host, port) = try hostAndPort(address)
        return clusterTarget(host: host, port: port)
    }

    static func hostAndPort(_ address: String) throws -> (String, Int) {
        try parseHostAndPort(address, defaultPort: defaultPort)
    }
}

/// The CA certificate a joining node found in the manager's chain, once the handshake pinned it.
final class PinnedCertificate: Sendable {
    let value = Mutex<Certificate?>(nil)
}

/// The roots a manager's port accepts client certificates from: the cluster's CA (and the next
/// one during a rotation) as its replicated store says, read again only when the cluster row's
/// version changes.
final class RootsCache: Sendable {
    private let store: ClusterStore
    private let cached = Mutex<(version: Int64, roots: [Certificate])?>(nil)

    init(store: ClusterStore) { self.store = store }

    /// nil while the store holds no cluster yet (a manager that just joined).
    func current() -> [Certificate]? {
        guard let cluster = try? store.cluster() else { return nil }
        if let cached = cached.withLock({ $0 }), cached.version == cluster.version { return cached.roots }
        let roots = [cluster.caCertificatePEM, cluster.pendingCACertificatePEM].filter { !$0.isEmpty }.compactMap {
            try? Certificate(pemEncoded: $0)
        }
        cached.withLock { $0 = (cluster.version, roots) }
        return roots
    }
}
