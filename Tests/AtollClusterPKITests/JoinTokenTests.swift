import AtollCore
import Testing
import X509

@testable import AtollClusterPKI

private let fingerprint = String(repeating: "0123456789abcdef", count: 4)
private let secret = "abcdefghijklmnopqrstuvwxyz012345"

@Suite("Join token")
struct JoinTokenTests {

    @Test("a token formats as ATLTKN-1-<fingerprint>-<secret> and parses back")
    func formatsAndParses() throws {
        let token = JoinToken(caFingerprint: fingerprint, secret: secret)
        #expect(token.description == "ATLTKN-1-\(fingerprint)-\(secret)")
        #expect(try JoinToken(parsing: token.description) == token)
        #expect(try JoinToken(parsing: "  \(token)\n") == token)
        #expect(try JoinToken(parsing: "ATLTKN-1-\(fingerprint.uppercased())-\(secret)") == token)
    }

    @Test("a token for a real ca and a generated secret round-trips and pins that ca")
    func realTokenRoundTrips() throws {
        let ca = try CertificateAuthority.create(clusterID: "c")
        let token = JoinToken(caFingerprint: ca.fingerprint, secret: JoinToken.generateSecret())
        let parsed = try JoinToken(parsing: String(describing: token))
        #expect(parsed == token)
        #expect(parsed.pins(ca.certificate))
        #expect(parsed.pins(try Certificate(pem: ca.certificatePEM)))
        #expect(!parsed.pins(try CertificateAuthority.create(clusterID: "c").certificate))
    }

    @Test("generated secrets are 32 characters of [a-z0-9] and differ")
    func generatedSecrets() {
        let secrets = (0..<64).map { _ in JoinToken.generateSecret() }
        for secret in secrets {
            #expect(secret.count == 32)
            #expect(secret.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) })
        }
        #expect(Set(secrets).count == secrets.count)
        // Over 64 × 32 characters, every character of the alphabet shows up.
        #expect(Set(secrets.joined()).count == 36)
    }

    @Test(
        "malformed tokens are refused with a clear message",
        arguments: [
            "",
            "ATLTKN",
            "SWMTKN-1-\(fingerprint)-\(secret)",
            "atltkn-1-\(fingerprint)-\(secret)",
            "ATLTKN-2-\(fingerprint)-\(secret)",
            "ATLTKN--\(fingerprint)-\(secret)",
            "ATLTKN-1-\(fingerprint.dropLast())-\(secret)",
            "ATLTKN-1-\(fingerprint)0-\(secret)",
            "ATLTKN-1-\(String(repeating: "g", count: 64))-\(secret)",
            "ATLTKN-1-\(fingerprint.dropLast())+-\(secret)",
            "ATLTKN-1--\(secret)",
            "ATLTKN-1-\(fingerprint)-",
            "ATLTKN-1-\(fingerprint)",
            "ATLTKN-1-\(fingerprint)-\(secret)-x",
            "ATLTKN-1-\(fingerprint)-\(secret.prefix(16))-\(secret.suffix(15))",
            "ATLTKN-1-\(fingerprint)--\(secret)",
            "ATLTKN-1-\(fingerprint)-\(secret.dropLast())",
            "ATLTKN-1-\(fingerprint)-\(secret)a",
            "ATLTKN-1-\(fingerprint)-\(secret.uppercased())",
            "ATLTKN-1-\(fingerprint)-\(secret.dropLast())_",
            "ATLTKN-1-\(fingerprint)-\(secret.dropLast())é",
            "ATLTKN-1-\(fingerprint) -\(secret)",
        ]
    )
    func malformedTokensAreRefused(text: String) {
        let error = expectAtollError(.invalidArgument) { _ = try JoinToken(parsing: text) }
        #expect(error?.message.hasPrefix("invalid join token: ") == true)
    }

    @Test("matches(secret:) is true only for the exact secret")
    func matchesSecret() {
        let token = JoinToken(caFingerprint: fingerprint, secret: secret)
        #expect(token.matches(secret: secret))
        #expect(!token.matches(secret: String(secret.dropLast()) + "6"))
        #expect(!token.matches(secret: String(secret.dropLast())))
        #expect(!token.matches(secret: secret + "6"))
        #expect(!token.matches(secret: ""))
        #expect(!token.matches(secret: secret.uppercased()))
        #expect(!JoinToken(caFingerprint: fingerprint, secret: "").matches(secret: ""))
    }
}
