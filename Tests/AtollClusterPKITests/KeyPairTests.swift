import AtollCore
import Foundation
import SwiftASN1
import Testing
import X509

@testable import AtollClusterPKI

@Suite("Key pair")
struct KeyPairTests {
    @Test("a key round-trips through pkcs#8 pem that openssl reads")
    func keyRoundTripsThroughPEM() throws {
        let key = KeyPair.generate()
        #expect(key.pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(key.pem.hasSuffix("-----END PRIVATE KEY-----\n"))
        let loaded = try KeyPair(pem: key.pem)
        #expect(loaded.privateKey.rawRepresentation == key.privateKey.rawRepresentation)
        #expect(loaded.pem == key.pem)
        #expect(KeyPair.generate().privateKey.rawRepresentation != key.privateKey.rawRepresentation)

        try withTemporaryDirectory { dir in
            try dir.write(key.pem, to: "key.pem")
            let check = try OpenSSL.run(["pkey", "-in", "key.pem", "-noout", "-text"], in: dir)
            #expect(check.succeeded, "\(check.stderr)")
            #expect(check.stdout.contains("NIST CURVE: P-256"))
        }
    }

    @Test("a sec1 key made by openssl ecparam is read too")
    func readsSEC1Keys() throws {
        try withTemporaryDirectory { dir in
            let made = try OpenSSL.run(
                ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "key.pem"],
                in: dir
            )
            #expect(made.succeeded, "\(made.stderr)")
            let pem = try dir.read("key.pem")
            #expect(pem.contains("BEGIN EC PRIVATE KEY"))
            let key = try KeyPair(pem: pem)
            let reparsed = try OpenSSL.run(["pkey", "-in", "key.pem"], in: dir)
            #expect(try KeyPair(pem: reparsed.stdout).privateKey.rawRepresentation == key.privateKey.rawRepresentation)
        }
    }

    @Test("garbage, a certificate and a p-384 key are not a key pair")
    func refusesWhatIsNotAP256Key() throws {
        _ = expectAtollError(.invalidArgument) { _ = try KeyPair(pem: "") }
        _ = expectAtollError(.invalidArgument) {
            _ = try KeyPair(pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        }
        let ca = try CertificateAuthority.create(clusterID: "c")
        _ = expectAtollError(.invalidArgument) { _ = try KeyPair(pem: ca.certificatePEM) }
        try withTemporaryDirectory { dir in
            let made = try OpenSSL.run(
                ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "key.pem"],
                in: dir
            )
            #expect(made.succeeded, "\(made.stderr)")
            let pem = try dir.read("key.pem")
            _ = expectAtollError(.invalidArgument) { _ = try KeyPair(pem: pem) }
        }
    }

    @Test("the description never shows the private key")
    func descriptionHidesThePrivateKey() throws {
        let key = KeyPair.generate()
        let body = key.pem.split(separator: "\n")[1]
        #expect(!key.description.contains(body))
        #expect(!String(describing: key).contains(body))
        #expect(key.description.hasPrefix("KeyPair(P-256, public key sha256:"))
    }

    @Test("a csr proves the key, carries the common name and passes openssl req -verify")
    func certificateSigningRequestIsValid() throws {
        let key = KeyPair.generate()
        let pem = try key.certificateSigningRequest(commonName: "node-3")
        #expect(pem.hasPrefix("-----BEGIN CERTIFICATE REQUEST-----\n"))
        let csr = try CertificateSigningRequest(pemEncoded: pem)
        #expect(csr.publicKey == Certificate.PublicKey(key.publicKey))
        #expect(csr.subject.singleValue(of: .RDNAttributeType.commonName) == "node-3")
        #expect(csr.publicKey.isValidSignature(csr.signature, for: csr))

        try withTemporaryDirectory { dir in
            try dir.write(pem, to: "node.csr")
            let verify = try OpenSSL.run(["req", "-in", "node.csr", "-noout", "-verify"], in: dir)
            #expect(verify.succeeded, "\(verify.stdout) \(verify.stderr)")
        }
    }
}
