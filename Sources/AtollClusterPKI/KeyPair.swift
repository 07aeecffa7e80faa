import AtollCore
// swift-crypto does not mark its key types Sendable; they are immutable values (as swift-certificates assumes).
@preconcurrency import Crypto
import Foundation
import SwiftASN1
import X509

/// A P-256 key and its PEM.
public struct KeyPair: Sendable, CustomStringConvertible {
    public let privateKey: P256.Signing.PrivateKey

    public init(privateKey: P256.Signing.PrivateKey) {
        self.privateKey = privateKey
    }

    /// A fresh random key.
    public static func generate() -> KeyPair {
        KeyPair(privateKey: P256.Signing.PrivateKey())
    }

    /// Reads a P-256 private key from PEM: PKCS#8 (`PRIVATE KEY`) or SEC 1 (`EC PRIVATE KEY`).
    public init(pem: String) throws {
        do {
            privateKey = try P256.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            throw AtollError.invalidArgument("invalid private key: want a P-256 key in PEM", cause: error)
        }
    }

    /// PKCS#8 PEM, `-----BEGIN PRIVATE KEY-----`, ending in a newline.
    public var pem: String { privateKey.pemRepresentation.withTrailingNewline }

    public var publicKey: P256.Signing.PublicKey { privateKey.publicKey }

    /// A CSR (PEM) for this key; the CA decides the identity, the CSR only proves the key.
    public func certificateSigningRequest(commonName: String) throws -> String {
        do {
            let subject = DistinguishedName([
                RelativeDistinguishedName(.init(type: .RDNAttributeType.commonName, utf8String: commonName))
            ])
            let csr = try CertificateSigningRequest(
                version: .v1,
                subject: subject,
                privateKey: Certificate.PrivateKey(privateKey),
                attributes: CertificateSigningRequest.Attributes(),
                signatureAlgorithm: .ecdsaWithSHA256
            )
            return try csr.serializeAsPEM().pemString.withTrailingNewline
        } catch {
            throw AtollError.internalError(
                "cannot create a certificate signing request for \"\(commonName)\"", cause: error)
        }
    }

    /// Never prints the private key: names the key by the sha256 of its public key's DER.
    public var description: String {
        let digest = SHA256.hash(data: publicKey.derRepresentation)
        return "KeyPair(P-256, public key sha256:\(digest.hexString))"
    }
}

extension Sequence<UInt8> {
    /// Lower-case hex, two digits a byte.
    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    var withTrailingNewline: String { hasSuffix("\n") ? self : self + "\n" }
}
