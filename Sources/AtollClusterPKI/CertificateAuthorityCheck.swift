import AtollCore
@preconcurrency import Crypto
import Foundation
import X509

/// The public half of a cluster CA: enough for a node or a client to check the certificates it
/// is shown (a `CertificateAuthority` also holds the key and signs).
public struct CertificateAuthorityCheck: Sendable {
    public let certificate: Certificate

    public init(certificate: Certificate) throws {
        guard P256.Signing.PublicKey(certificate.publicKey) != nil else {
            throw AtollError.invalidArgument("the cluster CA's key is not ECDSA P-256")
        }
        self.certificate = certificate
    }

    /// Whether this CA signed `candidate` and both are valid at `now` (as
    /// `CertificateAuthority.validates`).
    public func validates(_ candidate: Certificate, now: Date = Date()) -> Bool {
        candidate.issuer == certificate.subject
            && now >= candidate.notValidBefore && now <= candidate.notValidAfter
            && now >= certificate.notValidBefore && now <= certificate.notValidAfter
            && certificate.publicKey.isValidSignature(candidate.signature, for: candidate)
    }

    /// Whether `candidate` is valid and names a manager of this CA's cluster: what a node or an
    /// admin client asks of the server it connects to.
    public func validatesManager(_ candidate: Certificate, now: Date = Date()) -> Bool {
        validates(candidate, now: now) && CertificateIdentity(certificate: candidate)?.role == .manager
    }

    /// sha256 of a certificate's DER, lower-case hex: what join tokens pin.
    public static func fingerprint(of certificate: Certificate) throws -> String {
        CertificateAuthority.fingerprint(ofDER: try certificate.derBytes)
    }
}
