import AtollCore
import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

@testable import AtollClusterPKI

@Suite("Certificate authority")
struct CertificateAuthorityTests {
    /// A whole second, so that certificate times (second precision) compare equal.
    let now = Date(timeIntervalSince1970: 1_764_000_000)

    @Test("a new root round-trips through pem and is a self-signed p-256 ca for its cluster")
    func createdRootRoundTripsThroughPEM() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a", now: now)
        let loaded = try CertificateAuthority(certificatePEM: ca.certificatePEM, keyPEM: ca.key.pem)

        #expect(loaded.certificate == ca.certificate)
        #expect(loaded.certificatePEM == ca.certificatePEM)
        #expect(loaded.fingerprint == ca.fingerprint)
        #expect(loaded.clusterID == "cluster-a")
        #expect(loaded.key.privateKey.rawRepresentation == ca.key.privateKey.rawRepresentation)

        let certificate = loaded.certificate
        #expect(certificate.subject.singleValue(of: .RDNAttributeType.commonName) == "atoll-cluster-root-ca")
        #expect(certificate.subject.singleValue(of: .RDNAttributeType.organizationName) == "cluster-a")
        #expect(certificate.issuer == certificate.subject)
        #expect(P256.Signing.PublicKey(certificate.publicKey) != nil)
        #expect(certificate.signatureAlgorithm == .ecdsaWithSHA256)
        #expect(certificate.publicKey.isValidSignature(certificate.signature, for: certificate))

        let basic = try #require(certificate.extensions[oid: .X509ExtensionID.basicConstraints])
        #expect(basic.critical)
        #expect(try certificate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        let usage = try #require(certificate.extensions[oid: .X509ExtensionID.keyUsage])
        #expect(usage.critical)
        #expect(try certificate.extensions.keyUsage == KeyUsage(keyCertSign: true, cRLSign: true))
        #expect(try certificate.extensions.subjectKeyIdentifier != nil)

        #expect(certificate.notValidBefore == now - 60)
        #expect(certificate.notValidAfter == now + 7305 * 86400)
        #expect(certificate.serialNumber.bytes.count == 20)
    }

    @Test("openssl reads the root as a critical ca with certificate and crl signing")
    func openSSLReadsTheRoot() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a")
        try withTemporaryDirectory { dir in
            try dir.write(ca.certificatePEM, to: "ca.pem")
            let text = try OpenSSL.run(["x509", "-in", "ca.pem", "-noout", "-text"], in: dir)
            #expect(text.succeeded, "\(text.stderr)")
            #expect(text.stdout.contains("X509v3 Basic Constraints: critical"))
            #expect(text.stdout.contains("CA:TRUE, pathlen:0"))
            #expect(text.stdout.contains("Certificate Sign, CRL Sign"))
            #expect(text.stdout.contains("ecdsa-with-SHA256"))
            #expect(text.stdout.contains("NIST CURVE: P-256"))
            // A root verifies against itself.
            let verify = try OpenSSL.run(["verify", "-x509_strict", "-CAfile", "ca.pem", "ca.pem"], in: dir)
            #expect(verify.succeeded, "\(verify.stdout) \(verify.stderr)")
        }
    }

    @Test("the fingerprint is stable and equals openssl's sha256 of the der")
    func fingerprintMatchesOpenSSL() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a")
        #expect(ca.fingerprint.count == 64)
        #expect(ca.fingerprint.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(try CertificateAuthority.fingerprint(ofPEM: ca.certificatePEM) == ca.fingerprint)
        #expect(
            try CertificateAuthority(certificatePEM: ca.certificatePEM, keyPEM: ca.key.pem).fingerprint
                == ca.fingerprint)

        try withTemporaryDirectory { dir in
            try dir.write(ca.certificatePEM, to: "ca.pem")
            let result = try OpenSSL.shell("/usr/bin/openssl x509 -in ca.pem -outform der | sha256sum", in: dir)
            #expect(result.succeeded, "\(result.stderr)")
            let openssl = try #require(result.stdout.split(separator: " ").first)
            #expect(String(openssl) == ca.fingerprint)
        }
        // Another root, another fingerprint.
        #expect(try CertificateAuthority.create(clusterID: "cluster-a").fingerprint != ca.fingerprint)
    }

    @Test("fingerprint(ofPEM:) refuses what is not one certificate")
    func fingerprintRefusesNonCertificates() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a")
        _ = expectAtollError(.invalidArgument) { _ = try CertificateAuthority.fingerprint(ofPEM: "hello") }
        _ = expectAtollError(.invalidArgument) { _ = try CertificateAuthority.fingerprint(ofPEM: ca.key.pem) }
        _ = expectAtollError(.invalidArgument) {
            _ = try CertificateAuthority.fingerprint(ofPEM: ca.certificatePEM + ca.certificatePEM)
        }
    }

    @Test("loading refuses a key that is not the certificate's, a leaf certificate and garbage")
    func loadingRefusesMismatches() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a")
        let other = try CertificateAuthority.create(clusterID: "cluster-a")
        let mismatch = expectAtollError(.invalidArgument) {
            _ = try CertificateAuthority(certificatePEM: ca.certificatePEM, keyPEM: other.key.pem)
        }
        #expect(mismatch?.message.contains("does not match") == true)

        let nodeKey = KeyPair.generate()
        let leaf = try ca.issue(
            publicKey: nodeKey.publicKey,
            identity: CertificateIdentity(nodeID: "n1", role: .manager, clusterID: "cluster-a")
        )
        let notCA = expectAtollError(.invalidArgument) {
            _ = try CertificateAuthority(certificatePEM: try leaf.pem, keyPEM: nodeKey.pem)
        }
        #expect(notCA?.message.contains("not a certificate authority") == true)

        _ = expectAtollError(.invalidArgument) {
            _ = try CertificateAuthority(certificatePEM: "not pem", keyPEM: ca.key.pem)
        }
        _ = expectAtollError(.invalidArgument) {
            _ = try CertificateAuthority(certificatePEM: ca.certificatePEM, keyPEM: "not pem")
        }
        _ = expectAtollError(.invalidArgument) { _ = try CertificateAuthority.create(clusterID: "") }
    }

    @Test("an issued certificate carries the identity, ip and dns sans, both ekus and the validity")
    func issuedCertificateCarriesIdentityAndExtensions() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a", now: now)
        let key = KeyPair.generate()
        let identity = CertificateIdentity(nodeID: "node-7", role: .worker, clusterID: "cluster-a")
        let certificate = try ca.issue(
            publicKey: key.publicKey,
            identity: identity,
            addresses: ["10.0.0.7", "fd00::7", "node-7.cluster.internal", "[::1]", "10.0.0.7"],
            validity: 30 * 86400,
            now: now
        )

        #expect(CertificateIdentity(certificate: certificate) == identity)
        #expect(certificate.subject.singleValue(of: .RDNAttributeType.commonName) == "node-7")
        #expect(certificate.subject.singleValue(of: .RDNAttributeType.organizationalUnitName) == "atoll-worker")
        #expect(certificate.subject.singleValue(of: .RDNAttributeType.organizationName) == "cluster-a")
        #expect(certificate.issuer == ca.certificate.subject)
        #expect(certificate.publicKey == Certificate.PublicKey(key.publicKey))

        let sans = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(
            Array(sans) == [
                .ipAddress(ASN1OctetString(contentBytes: [10, 0, 0, 7])),
                .ipAddress(ASN1OctetString(contentBytes: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7])),
                .dnsName("node-7.cluster.internal"),
                .ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
            ]
        )
        let eku = try #require(try certificate.extensions.extendedKeyUsage)
        #expect(Array(eku) == [.serverAuth, .clientAuth])
        #expect(try certificate.extensions.keyUsage == KeyUsage(digitalSignature: true, keyAgreement: true))
        #expect(try certificate.extensions.basicConstraints == .notCertificateAuthority)
        #expect(
            try certificate.extensions.authorityKeyIdentifier?.keyIdentifier
                == ca.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
        )

        #expect(certificate.notValidBefore == now - 60)
        #expect(certificate.notValidAfter == now + 30 * 86400)
        #expect(certificate.serialNumber.bytes.count == 20)
        #expect(ca.validates(certificate, now: now))
        #expect(ca.authenticatedIdentity(of: certificate, now: now) == identity)
    }

    @Test("a certificate's default validity is 90 days and never outlives the ca")
    func validityDefaultsAndIsCappedAtTheCA() throws {
        let ca = try CertificateAuthority.create(clusterID: "c", now: now)
        let key = KeyPair.generate()
        let identity = CertificateIdentity(nodeID: "n", role: .worker, clusterID: "c")
        let normal = try ca.issue(publicKey: key.publicKey, identity: identity, now: now)
        #expect(normal.notValidAfter == now + 90 * 86400)

        let late = ca.certificate.notValidAfter - 86400
        let capped = try ca.issue(publicKey: key.publicKey, identity: identity, now: late)
        #expect(capped.notValidAfter == ca.certificate.notValidAfter)

        _ = expectAtollError(.failedPrecondition) {
            _ = try ca.issue(publicKey: key.publicKey, identity: identity, now: ca.certificate.notValidAfter + 1)
        }
        _ = expectAtollError(.invalidArgument) {
            _ = try ca.issue(publicKey: key.publicKey, identity: identity, validity: 0, now: now)
        }
    }

    @Test("serial numbers are random, 20 bytes and positive")
    func serialNumbersAreRandomAndPositive() throws {
        let ca = try CertificateAuthority.create(clusterID: "c")
        let key = KeyPair.generate()
        var serials: Set<Certificate.SerialNumber> = []
        for index in 0..<16 {
            let certificate = try ca.issue(
                publicKey: key.publicKey,
                identity: CertificateIdentity(nodeID: "n\(index)", role: .worker, clusterID: "c")
            )
            let bytes = certificate.serialNumber.bytes
            #expect(bytes.count == 20)
            #expect(try #require(bytes.first) & 0x80 == 0)
            #expect(try #require(bytes.first) != 0)
            serials.insert(certificate.serialNumber)
        }
        #expect(serials.count == 16)
    }

    @Test("the ca refuses an identity of another cluster, an empty node id and a malformed address")
    func issueRefusesBadRequests() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a")
        let key = KeyPair.generate()
        let foreign = expectAtollError(.invalidArgument) {
            _ = try ca.issue(
                publicKey: key.publicKey,
                identity: CertificateIdentity(nodeID: "n", role: .worker, clusterID: "cluster-b")
            )
        }
        #expect(foreign?.message.contains("cluster-b") == true)
        _ = expectAtollError(.invalidArgument) {
            _ = try ca.issue(
                publicKey: key.publicKey,
                identity: CertificateIdentity(nodeID: "", role: .worker, clusterID: "cluster-a")
            )
        }
        for address in ["10.0.0.256", "bad host", "ünicode.example", "", "a..b"] {
            _ = expectAtollError(.invalidArgument) {
                _ = try ca.issue(
                    publicKey: key.publicKey,
                    identity: CertificateIdentity(nodeID: "n", role: .worker, clusterID: "cluster-a"),
                    addresses: [address]
                )
            }
        }
    }

    @Test("openssl verify accepts an issued certificate for tls servers and clients")
    func openSSLVerifiesIssuedCertificates() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a")
        let key = KeyPair.generate()
        let certificate = try ca.issue(
            publicKey: key.publicKey,
            identity: CertificateIdentity(nodeID: "node-1", role: .manager, clusterID: "cluster-a"),
            addresses: ["127.0.0.1", "::1", "localhost"]
        )
        try withTemporaryDirectory { dir in
            try dir.write(ca.certificatePEM, to: "ca.pem")
            try dir.write(try certificate.pem, to: "node.pem")
            try dir.write(key.pem, to: "node.key")
            let plain = try OpenSSL.run(["verify", "-CAfile", "ca.pem", "node.pem"], in: dir)
            #expect(plain.succeeded, "\(plain.stdout) \(plain.stderr)")
            #expect(plain.stdout.contains("node.pem: OK"))
            for purpose in ["sslserver", "sslclient"] {
                let strict = try OpenSSL.run(
                    ["verify", "-x509_strict", "-purpose", purpose, "-CAfile", "ca.pem", "node.pem"],
                    in: dir
                )
                #expect(strict.succeeded, "\(purpose): \(strict.stdout) \(strict.stderr)")
            }
            let host = try OpenSSL.run(
                [
                    "verify", "-CAfile", "ca.pem", "-verify_ip", "127.0.0.1", "-verify_hostname", "localhost",
                    "node.pem",
                ],
                in: dir
            )
            #expect(host.succeeded, "\(host.stdout) \(host.stderr)")
            let text = try OpenSSL.run(["x509", "-in", "node.pem", "-noout", "-text"], in: dir)
            #expect(text.stdout.contains("TLS Web Server Authentication, TLS Web Client Authentication"))
            #expect(text.stdout.contains("IP Address:127.0.0.1"))
            #expect(text.stdout.contains("DNS:localhost"))
            #expect(text.stdout.contains("CA:FALSE"))
            #expect(text.stdout.contains("O = cluster-a, OU = atoll-manager, CN = node-1"))
            // The key on disk is the certificate's.
            let matches = try OpenSSL.shell(
                "/usr/bin/openssl x509 -in node.pem -noout -pubkey > a && /usr/bin/openssl pkey -in node.key -pubout > b && cmp a b",
                in: dir
            )
            #expect(matches.succeeded, "\(matches.stderr)")

            // A certificate of another CA does not verify.
            let other = try CertificateAuthority.create(clusterID: "cluster-a")
            try dir.write(other.certificatePEM, to: "other.pem")
            let foreign = try OpenSSL.run(["verify", "-CAfile", "other.pem", "node.pem"], in: dir)
            #expect(!foreign.succeeded)
        }
    }

    @Test("a csr made by openssl req is accepted and the ca, not the csr, decides the identity")
    func acceptsAnOpenSSLCSR() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a")
        try withTemporaryDirectory { dir in
            let key = try OpenSSL.run(
                ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "node.key"],
                in: dir
            )
            #expect(key.succeeded, "\(key.stderr)")
            let req = try OpenSSL.run(
                ["req", "-new", "-key", "node.key", "-subj", "/CN=x", "-out", "node.csr"], in: dir)
            #expect(req.succeeded, "\(req.stderr)")

            let identity = CertificateIdentity(nodeID: "node-2", role: .worker, clusterID: "cluster-a")
            let certificate = try ca.issue(
                csrPEM: try dir.read("node.csr"), identity: identity, addresses: ["10.1.2.3"])
            #expect(CertificateIdentity(certificate: certificate) == identity)
            #expect(certificate.subject.singleValue(of: .RDNAttributeType.commonName) == "node-2")
            #expect(ca.validates(certificate))

            // The certificate is for the key openssl made.
            let nodeKey = try KeyPair(pem: try dir.read("node.key"))
            #expect(certificate.publicKey == Certificate.PublicKey(nodeKey.publicKey))

            try dir.write(ca.certificatePEM, to: "ca.pem")
            try dir.write(try certificate.pem, to: "node.pem")
            let verify = try OpenSSL.run(["verify", "-CAfile", "ca.pem", "node.pem"], in: dir)
            #expect(verify.succeeded, "\(verify.stdout) \(verify.stderr)")
        }
    }

    @Test("a csr with a tampered signature or subject is refused")
    func refusesATamperedCSR() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a")
        let identity = CertificateIdentity(nodeID: "n", role: .worker, clusterID: "cluster-a")
        let csrPEM = try KeyPair.generate().certificateSigningRequest(commonName: "xxxx")
        let document = try PEMDocument(pemString: csrPEM)

        // Flip the last byte: it lies in the signature's s value.
        var badSignature = document.derBytes
        badSignature[badSignature.count - 1] ^= 0x01
        let signatureError = expectAtollError(.invalidArgument) {
            _ = try ca.issue(
                csrPEM: PEMDocument(type: "CERTIFICATE REQUEST", derBytes: badSignature).pemString,
                identity: identity
            )
        }
        #expect(signatureError?.message.contains("invalid signature") == true)

        // Change the signed subject: "xxxx" becomes "yyyy".
        var badSubject = document.derBytes
        let range = try #require(badSubject.firstRange(of: Array("xxxx".utf8)))
        badSubject.replaceSubrange(range, with: Array("yyyy".utf8))
        _ = expectAtollError(.invalidArgument) {
            _ = try ca.issue(
                csrPEM: PEMDocument(type: "CERTIFICATE REQUEST", derBytes: badSubject).pemString,
                identity: identity
            )
        }

        _ = expectAtollError(.invalidArgument) { _ = try ca.issue(csrPEM: "garbage", identity: identity) }
        // The untouched CSR is fine.
        #expect(try CertificateIdentity(certificate: ca.issue(csrPEM: csrPEM, identity: identity)) == identity)
    }

    @Test("validates is true for its own certificates and false for another ca's, expired or not yet valid ones")
    func validatesChecksIssuerSignatureAndTime() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a", now: now)
        let twin = try CertificateAuthority.create(clusterID: "cluster-a", now: now)
        let key = KeyPair.generate()
        let identity = CertificateIdentity(nodeID: "n", role: .worker, clusterID: "cluster-a")
        let mine = try ca.issue(publicKey: key.publicKey, identity: identity, now: now)
        let theirs = try twin.issue(publicKey: key.publicKey, identity: identity, now: now)

        #expect(ca.validates(mine, now: now))
        #expect(ca.validates(mine, now: now + 89 * 86400))
        // Same subject and cluster, different key: refused.
        #expect(theirs.issuer == mine.issuer)
        #expect(!ca.validates(theirs, now: now))
        #expect(twin.validates(theirs, now: now))
        #expect(ca.authenticatedIdentity(of: theirs, now: now) == nil)
        // Expired.
        #expect(!ca.validates(mine, now: now + 90 * 86400 + 1))
        #expect(ca.authenticatedIdentity(of: mine, now: now + 91 * 86400) == nil)
        // Not yet valid (validity starts one minute before issue).
        #expect(ca.validates(mine, now: now - 60))
        #expect(!ca.validates(mine, now: now - 61))
        // Another cluster's CA.
        let otherCluster = try CertificateAuthority.create(clusterID: "cluster-b", now: now)
        #expect(!otherCluster.validates(mine, now: now))
    }

    @Test("the ca's own certificate validates but names no caller identity")
    func caCertificateIsNoCallerIdentity() throws {
        let ca = try CertificateAuthority.create(clusterID: "cluster-a", now: now)
        #expect(ca.validates(ca.certificate, now: now))
        #expect(ca.authenticatedIdentity(of: ca.certificate, now: now) == nil)
    }
}
