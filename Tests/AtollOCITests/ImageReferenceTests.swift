import AtollCore
import Foundation
import Testing

@testable import AtollOCI

private let hex64 = "6b2b6cd8f4d1b7e5bb1e7d5fc7b3f2a1a0e6f3c4d5e6f7a8b9c0d1e2f3a4b5c6"

@Suite struct ImageReferenceTests {
    /// input, normalized, familiar
    static let good: [(String, String, String)] = [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox:musl", "docker.io/library/busybox:musl", "busybox:musl"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
        ("library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/x:y", "localhost:5000/x:y", "localhost:5000/x:y"),
        ("localhost:5000", "docker.io/library/localhost:5000", "localhost:5000"),
        ("quay.io/coreos/etcd:v3.5.0", "quay.io/coreos/etcd:v3.5.0", "quay.io/coreos/etcd:v3.5.0"),
        (
            "registry.example.com:443/team/sub/app", "registry.example.com:443/team/sub/app:latest",
            "registry.example.com:443/team/sub/app:latest"
        ),
        ("[::1]:5000/app:1", "[::1]:5000/app:1", "[::1]:5000/app:1"),
        ("192.168.1.10:5000/app", "192.168.1.10:5000/app:latest", "192.168.1.10:5000/app:latest"),
        ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
        ("user/a.b_c__d-e---f", "docker.io/user/a.b_c__d-e---f:latest", "user/a.b_c__d-e---f:latest"),
        ("user/app:_Tag.1-x", "docker.io/user/app:_Tag.1-x", "user/app:_Tag.1-x"),
        ("busybox@sha256:\(hex64)", "docker.io/library/busybox@sha256:\(hex64)", "busybox@sha256:\(hex64)"),
        (
            "busybox:1.36@sha256:\(hex64)", "docker.io/library/busybox:1.36@sha256:\(hex64)",
            "busybox:1.36@sha256:\(hex64)"
        ),
        ("abc", "docker.io/library/abc:latest", "abc:latest"),
    ]

    /// input, a fragment of the error message
    static let bad: [(String, String)] = [
        ("", "empty reference"),
        ("Busybox", "must be lower case"),
        ("user/Busybox", "must be lower case"),
        (":tag", "missing repository name"),
        ("busybox:", "bad tag"),
        ("busybox:-x", "bad tag"),
        ("busybox:.x", "bad tag"),
        ("busybox:" + String(repeating: "t", count: 129), "bad tag"),
        ("busybox@sha256:abc", "bad digest"),
        ("busybox@md5:\(hex64)", "bad digest"),
        ("busybox@sha256:\(hex64)@x", "bad digest"),
        ("a//b", "empty path component"),
        ("Foo//bar", "empty path component"),
        ("user/a__-b", "bad path component"),
        ("user/a___b", "bad path component"),
        ("user/-a", "bad path component"),
        ("user/a-", "bad path component"),
        ("user/a.", "bad path component"),
        ("user/a..b", "bad path component"),
        ("user/a b", "bad path component"),
        ("-host.com/app", "bad registry domain"),
        ("host.com:/app", "bad registry domain"),
        ("host.com:abc/app", "bad registry domain"),
        ("ho_st.com/app", "bad registry domain"),
        ("docker.io/", "missing repository path"),
        (hex64, "64-digit hexadecimal"),
        ("user/" + String(repeating: "a", count: 250), "limit is 255"),
    ]

    @Test(arguments: good)
    func goodReferencesNormalise(input: String, normalized: String, familiar: String) throws {
        let ref = try ImageReference(parsing: input)
        #expect(ref.normalized == normalized)
        #expect(ref.familiar == familiar)
        #expect(ref.description == normalized)
        // Normalising is idempotent.
        #expect(try ImageReference(parsing: normalized) == ref)
        #expect(try ImageReference(parsing: familiar) == ref)
    }

    @Test(arguments: bad)
    func badReferencesAreRejected(input: String, fragment: String) {
        let error = #expect(throws: AtollError.self) { try ImageReference(parsing: input) }
        #expect(error?.code == .invalidArgument)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("invalid reference \"\(input)\": "), "\(message)")
        #expect(message.contains(fragment), "\(message)")
    }

    @Test func partsAreExposed() throws {
        let ref = try ImageReference(parsing: "localhost:5000/team/app:1.0@sha256:\(hex64)")
        #expect(ref.domain == "localhost:5000")
        #expect(ref.path == "team/app")
        #expect(ref.name == "localhost:5000/team/app")
        #expect(ref.tag == "1.0")
        #expect(ref.digest?.hex == hex64)
        let hub = try ImageReference(parsing: "busybox")
        #expect(hub.domain == "docker.io" && hub.path == "library/busybox" && hub.tag == "latest" && hub.digest == nil)
        #expect(hub.familiarName == "busybox")
        let pinned = try ImageReference(parsing: "busybox@sha256:\(hex64)")
        #expect(pinned.tag == nil)
    }

    @Test func nameLengthLimitCountsTheNormalisedName() throws {
        // 255 characters in all: "docker.io/" (10) + "user/" (5) + 240.
        let longest = "user/" + String(repeating: "a", count: 240)
        #expect(try ImageReference(parsing: longest).name.count == 255)
        #expect(throws: AtollError.self) { try ImageReference(parsing: longest + "a") }
    }

    @Test func tagAndDigestCanBeReplaced() throws {
        let ref = try ImageReference(parsing: "quay.io/x/y:1")
        #expect(try ref.withTag("2").normalized == "quay.io/x/y:2")
        let digest = try Digest(hex: hex64)
        #expect(try ref.withDigest(digest).normalized == "quay.io/x/y@sha256:\(hex64)")
        #expect(throws: AtollError.self) { try ref.withTag("-bad") }
        #expect(try ImageReference(domain: "docker.io", path: "library/busybox").familiar == "busybox:latest")
    }

    @Test func codableUsesTheNormalisedString() throws {
        let ref = try ImageReference(parsing: "busybox")
        let data = try JSONEncoder().encode([ref])
        #expect(try JSONDecoder().decode([String].self, from: data) == ["docker.io/library/busybox:latest"])
        #expect(try JSONDecoder().decode([ImageReference].self, from: data) == [ref])
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode([ImageReference].self, from: Data(#"["UPPER"]"#.utf8))
        }
    }

    @Test func idPrefixesAreRecognised() {
        for yes in ["a", "abc123", "sha256:abc", hex64, "sha256:\(hex64)"] {
            #expect(ImageReference.looksLikeIDPrefix(yes), "\(yes)")
        }
        for no in ["", "sha256:", "ABC", "xyz", "abcg", hex64 + "a", "sha512:abc", "busybox", "sha256:sha256:ab"] {
            #expect(!ImageReference.looksLikeIDPrefix(no), "\(no)")
        }
    }

    @Test func loginServersNameTheirRegistryDomain() throws {
        let cases: [(String?, String)] = [
            (nil, "docker.io"), ("", "docker.io"), ("index.docker.io", "docker.io"),
            ("https://index.docker.io/v1/", "docker.io"), ("registry-1.docker.io", "docker.io"),
            ("quay.io", "quay.io"), ("http://127.0.0.1:5000/", "127.0.0.1:5000"), ("localhost:5000", "localhost:5000"),
            ("[::1]:5000", "[::1]:5000"),
        ]
        for (server, domain) in cases {
            #expect(try ImageReference.registryDomain(ofServer: server) == domain, "\(server ?? "nil")")
        }
        for bad in ["exa mple.com", "host:port", "https://-bad-/"] {
            #expect(throws: AtollError.self, "\(bad)") { try ImageReference.registryDomain(ofServer: bad) }
        }
    }
}
