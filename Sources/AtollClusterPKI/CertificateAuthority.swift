import AtollCore
@preconcurrency import Crypto
import Foundation
import SwiftASN1
import X509

/// The cluster's root certificate authority: a self-signed ECDSA P-256 certificate and its key.
///
/// A manager creates it once (`create(clusterID:)`), stores both PEMs, and reloads them with
/// `init(certificatePEM:keyPEM:)`. Join tokens pin its `fingerprint`. It issues every node's
/// certificate; the identity a certificate names is decided here, never taken from a CSR.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    public let key: KeyPair
    /// The cluster this CA belongs to: the O of its subject. It only issues certificates naming it.
    public let clusterID: String
    /// The certificate as PEM.
    public let certificatePEM: String
    /// sha256 of the certificate's DER, lower-case hex (64 chars) — what join tokens pin.
    public let fingerprint: String

    /// The CN of every Atoll root CA.
    public static let commonName = "atoll-cluster-root-ca"
    /// How long a new root is valid: 20 years (7305 days).
    public static let rootValidity: TimeInterval = 7305 * 86400
    /// How far into the past a new certificate's validity starts, to tolerate clock skew.
    public static let backdating: TimeInterval = 60

    private init(certificate: Certificate, key: KeyPair, clusterID: String) throws {
        self.certificate = certificate
        self.key = key
        self.clusterID = clusterID
        self.certificatePEM = try certificate.pem
        self.fingerprint = try Self.fingerprint(ofDER: certificate.derBytes)
    }

    /// A new self-signed root: ECDSA P-256, CN "atoll-cluster-root-ca", O = clusterID, CA:true (critical,
    /// path length 0: it signs only leaf certificates), keyCertSign+cRLSign (critical), 20 years.
    public static func create(clusterID: String, now: Date = Date()) throws -> CertificateAuthority {
        guard !clusterID.isEmpty else {
            throw AtollError.invalidArgument("invalid cluster id \"\": must not be empty")
        }
        let key = KeyPair.generate()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let subject = DistinguishedName([
            RelativeDistinguishedName(.init(type: .RDNAttributeType.organizationName, utf8String: clusterID)),
            RelativeDistinguishedName(.init(type: .RDNAttributeType.commonName, utf8String: commonName)),
        ])
        do {
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            }
            let certificate = try Certificate(
                version: .v3,
                serialNumber: randomSerialNumber(),
                publicKey: publicKey,
                notValidBefore: now - backdating,
                notValidAfter: now + rootValidity,
                issuer: subject,
                subject: subject,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(key.privateKey)
            )
            return try CertificateAuthority(certificate: certificate, key: key, clusterID: clusterID)
        } catch let error as AtollError {
            throw error
        } catch {
            throw AtollError.internalError("cannot create the root ca of cluster \"\(clusterID)\"", cause: error)
        }
    }

    /// Loads a CA from its PEMs. Checks that the certificate is a self-signed CA naming a cluster (O)
    /// and that the key is the certificate's.
    public init(certificatePEM: String, keyPEM: String) throws {
        let certificate = try Certificate(pem: certificatePEM)
        let key = try KeyPair(pem: keyPEM)
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw AtollError.invalidArgument(
                "ca private key does not match the ca certificate \"\(certificate.subject)\"")
        }
        guard case .isCertificateAuthority = try? certificate.extensions.basicConstraints else {
            throw AtollError.invalidArgument("certificate \"\(certificate.subject)\" is not a certificate authority")
        }
        guard certificate.issuer == certificate.subject,
            certificate.publicKey.isValidSignature(certificate.signature, for: certificate)
        else {
            throw AtollError.invalidArgument("ca certificate \"\(certificate.subject)\" is not self-signed")
        }
        guard let clusterID = certificate.subject.singleValue(of: .RDNAttributeType.organizationName) else {
            throw AtollError.invalidArgument("ca certificate \"\(certificate.subject)\" names no cluster (O)")
        }
        try self.init(certificate: certificate, key: key, clusterID: clusterID)
    }

    /// sha256 of the DER of the one certificate in `pem`, lower-case hex (64 chars).
    public static func fingerprint(ofPEM pem: String) throws -> String {
        let document: PEMDocument
        do {
            document = try PEMDocument(pemString: pem)
            _ = try Certificate(derEncoded: document.derBytes)
        } catch {
            throw AtollError.invalidArgument("invalid certificate: want one pem certificate", cause: error)
        }
        guard document.discriminator == Certificate.defaultPEMDiscriminator else {
            throw AtollError.invalidArgument(
                "invalid certificate: pem block is \"\(document.discriminator)\", want \"CERTIFICATE\""
            )
        }
        return fingerprint(ofDER: document.derBytes)
    }

    /// sha256 of a certificate's DER, lower-case hex (64 chars).
    public static func fingerprint(ofDER der: [UInt8]) -> String {
        SHA256.hash(data: der).hexString
    }

    /// Signs a certificate for the CSR's public key, naming `identity`. The CSR's signature is verified
    /// first (a bad one is an invalidArgument error) and its key must be ECDSA P-256; its subject is ignored.
    public func issue(
        csrPEM: String,
        identity: CertificateIdentity,
        addresses: [String] = [],
        validity: TimeInterval = 90 * 86400,
        now: Date = Date()
    ) throws -> Certificate {
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(pemEncoded: csrPEM)
        } catch {
            throw AtollError.invalidArgument("invalid certificate signing request", cause: error)
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw AtollError.invalidArgument(
                "certificate signing request \"\(csr.subject)\" has an invalid signature"
            )
        }
        guard let publicKey = P256.Signing.PublicKey(csr.publicKey) else {
            throw AtollError.invalidArgument(
                "certificate signing request \"\(csr.subject)\": key is not ECDSA P-256"
            )
        }
        return try issue(
            publicKey: publicKey,
            identity: identity,
            addresses: addresses,
            validity: validity,
            now: now
        )
    }

    /// Signs a certificate for a key generated locally (the manager's own certificate, the admin bundle).
    ///
    /// The certificate names `identity` (CN, OU, O); every entry of `addresses` that parses as an IPv4 or
    /// IPv6 address becomes an IP SAN, the rest DNS names. EKU serverAuth+clientAuth, KeyUsage
    /// digitalSignature+keyAgreement, not a CA, a random 20-byte positive serial. It is valid from one
    /// minute before `now` for `validity`, but never past the CA's own expiry.
    public func issue(
        publicKey: P256.Signing.PublicKey,
        identity: CertificateIdentity,
        addresses: [String] = [],
        validity: TimeInterval = 90 * 86400,
        now: Date = Date()
    ) throws -> Certificate {
        guard !identity.nodeID.isEmpty else {
            throw AtollError.invalidArgument("invalid certificate identity: node id must not be empty")
        }
        guard identity.clusterID == clusterID else {
            throw AtollError.invalidArgument(
                "cannot issue a certificate for cluster \"\(identity.clusterID)\": this ca belongs to cluster \"\(clusterID)\""
            )
        }
        guard validity > 0 else {
            throw AtollError.invalidArgument("invalid certificate validity \(validity)s: must be positive")
        }
        guard now >= certificate.notValidBefore, now < certificate.notValidAfter else {
            throw AtollError.failedPrecondition(
                "ca certificate of cluster \"\(clusterID)\" is not valid at \(now) (valid \(certificate.notValidBefore) to \(certificate.notValidAfter))"
            )
        }
        let names = try SubjectAddresses.generalNames(for: addresses)
        let subjectKey = Certificate.PublicKey(publicKey)
        let authorityKeyID =
            (try? certificate.extensions.subjectKeyIdentifier)?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
        do {
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyAgreement: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectKeyIdentifier(hash: subjectKey)
                AuthorityKeyIdentifier(keyIdentifier: authorityKeyID)
                if !names.isEmpty {
                    SubjectAlternativeNames(names)
                }
            }
            return try Certificate(
                version: .v3,
                serialNumber: Self.randomSerialNumber(),
                publicKey: subjectKey,
                notValidBefore: now - Self.backdating,
                notValidAfter: min(now + validity, certificate.notValidAfter),
                issuer: certificate.subject,
                subject: identity.distinguishedName,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(key.privateKey)
            )
        } catch {
            throw AtollError.internalError("cannot issue a certificate for \(identity)", cause: error)
        }
    }

    /// Whether `certificate` was signed by this CA and is valid at `now`: the issuer names this CA,
    /// the signature verifies with the CA's public key, and `now` lies in both the certificate's and
    /// the CA's validity windows. Synchronous and cheap (one ECDSA verification): usable from a TLS
    /// verification callback and per RPC.
    public func validates(_ certificate: Certificate, now: Date = Date()) -> Bool {
        (try? CertificateAuthorityCheck(certificate: self.certificate))?.validates(certificate, now: now) ?? false
    }

    /// The identity a caller's certificate proves: non-nil only when `validates(certificate, now:)`,
    /// the certificate is not a CA, and it names a node, a role and this CA's cluster.
    public func authenticatedIdentity(of certificate: Certificate, now: Date = Date()) -> CertificateIdentity? {
        guard validates(certificate, now: now),
            case .notCertificateAuthority = try? certificate.extensions.basicConstraints,
            let identity = CertificateIdentity(certificate: certificate),
            identity.clusterID == clusterID
        else { return nil }
        return identity
    }

    /// A random 20-byte serial whose first byte is 0x01…0x7f, so it stays positive and 20 bytes long.
    static func randomSerialNumber() -> Certificate.SerialNumber {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<20).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        bytes[0] = (bytes[0] & 0x7f) | 0x01
        return Certificate.SerialNumber(bytes: bytes)
    }
}
