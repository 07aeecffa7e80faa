import AtollCore
import Foundation
import X509

/// What a node needs to join a cluster: `ATLTKN-1-<CA fingerprint, 64 hex>-<secret, 32 chars [a-z0-9]>`
/// (Swarm's SWMTKN design). The joining node pins the CA by the fingerprint before it trusts the manager;
/// the manager admits the node by the secret.
public struct JoinToken: Sendable, Equatable, CustomStringConvertible {
    /// sha256 of the CA certificate's DER, 64 lower-case hex digits.
    public var caFingerprint: String
    /// 32 characters of [a-z0-9].
    public var secret: String

    public static let prefix = "ATLTKN"
    public static let version = "1"
    public static let secretLength = 32
    static let secretAlphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)

    public init(caFingerprint: String, secret: String) {
        self.caFingerprint = caFingerprint
        self.secret = secret
    }

    /// Parses `ATLTKN-1-<fingerprint>-<secret>`; surrounding white space is ignored, hex digits may be
    /// upper case (they are kept lower case). Every malformed input is an invalidArgument error.
    public init(parsing text: String) throws {
        let text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        func invalid(_ reason: String) -> AtollError {
            AtollError.invalidArgument("invalid join token: \(reason)")
        }
        guard parts.first == Substring(Self.prefix) else {
            throw invalid("want \(Self.prefix)-\(Self.version)-<ca fingerprint>-<secret>")
        }
        guard parts.count >= 2, parts[1] == Substring(Self.version) else {
            throw invalid("unsupported version \"\(parts.count >= 2 ? String(parts[1]) : "")\", want \(Self.version)")
        }
        guard parts.count == 4 else {
            throw invalid(
                "want 4 dash-separated parts, \(Self.prefix)-\(Self.version)-<ca fingerprint>-<secret>, got \(parts.count)"
            )
        }
        let fingerprint = parts[2].lowercased()
        guard fingerprint.utf8.count == 64, fingerprint.utf8.allSatisfy(Self.isLowerHex) else {
            throw invalid("ca fingerprint must be 64 hex digits")
        }
        let secret = String(parts[3])
        guard secret.utf8.count == Self.secretLength, secret.utf8.allSatisfy(Self.secretAlphabet.contains) else {
            throw invalid("secret must be \(Self.secretLength) characters of [a-z0-9]")
        }
        self.init(caFingerprint: fingerprint, secret: secret)
    }

    /// 32 random characters of [a-z0-9] (about 165 bits) from the system's secure generator.
    public static func generateSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<secretLength).map { _ in
            secretAlphabet[Int.random(in: 0..<secretAlphabet.count, using: &generator)]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `ATLTKN-1-<fingerprint>-<secret>`.
    public var description: String {
        "\(Self.prefix)-\(Self.version)-\(caFingerprint)-\(secret)"
    }

    /// Constant-time comparison of the secret part: the time taken depends only on the lengths.
    public func matches(secret candidate: String) -> Bool {
        let expected = Array(secret.utf8)
        let given = Array(candidate.utf8)
        var difference = UInt8(expected.count == given.count ? 0 : 1)
        for index in 0..<max(expected.count, given.count) {
            let a = index < expected.count ? expected[index] : 0
            let b = index < given.count ? given[index] : 0
            difference |= a ^ b
        }
        return difference == 0 && !expected.isEmpty
    }

    /// Whether this token pins `certificate`: the sha256 of its DER is the token's CA fingerprint. A joining
    /// node checks the CA certificate the manager presents with this before trusting it.
    public func pins(_ certificate: Certificate) -> Bool {
        guard let der = try? certificate.derBytes else { return false }
        return CertificateAuthority.fingerprint(ofDER: der) == caFingerprint
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x61...0x66).contains(byte)
    }
}
