import AtollCore
import Foundation
import Testing

@testable import AtollOCI

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The example of the Docker image manifest v2 schema 2 specification.
private let dockerManifestText = """
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7023,
            "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 32654,
                "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"
            },
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 16724,
                "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b"
            },
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 73109,
                "digest": "sha256:ec4b8955958665577945c89419d1af06b5f7636b4ac3da7f12184802ad867736"
            }
        ]
    }
    """

/// An OCI image index after the image spec's example, with an arm64 entry and a BuildKit
/// attestation manifest (platform unknown/unknown) added.
private let ociIndexText = """
    {
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.index.v1+json",
      "manifests": [
        {
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "size": 7143,
          "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f",
          "platform": { "architecture": "ppc64le", "os": "linux" }
        },
        {
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "size": 7682,
          "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
          "platform": { "architecture": "amd64", "os": "linux" }
        },
        {
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "size": 7682,
          "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
          "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" }
        },
        {
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "size": 840,
          "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
          "platform": { "architecture": "unknown", "os": "unknown" },
          "annotations": {
            "vnd.docker.reference.digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
            "vnd.docker.reference.type": "attestation-manifest"
          }
        }
      ],
      "annotations": {
        "com.example.key1": "value1",
        "com.example.key2": "value2"
      }
    }
    """

@Suite struct ManifestTests {
    @Test func dockerSchema2ManifestParses() throws {
        let doc = try ManifestDocument.parse(
            data: bytes(dockerManifestText), declaredMediaType: MediaType.dockerManifest)
        guard case .manifest(let m) = doc else {
            Issue.record("expected a manifest, got \(doc)")
            return
        }
        #expect(doc.mediaType == MediaType.dockerManifest)
        #expect(m.schemaVersion == 2)
        #expect(m.config.mediaType == MediaType.dockerConfig)
        #expect(m.config.size == 7023)
        #expect(m.config.digest.hex == "b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7")
        #expect(m.layers.map(\.size) == [32654, 16724, 73109])
        #expect(m.layers.allSatisfy { MediaType.layerCompression($0.mediaType) == .gzip })
        #expect(m.subject == nil && m.annotations == nil)
    }

    @Test func ociIndexParsesWithoutADeclaredType() throws {
        let doc = try ManifestDocument.parse(data: bytes(ociIndexText), declaredMediaType: nil)
        guard case .index(let index) = doc else {
            Issue.record("expected an index, got \(doc)")
            return
        }
        #expect(index.manifests.count == 4)
        #expect(index.manifests[0].platform == Platform(architecture: "ppc64le", os: "linux"))
        #expect(index.annotations?["com.example.key2"] == "value2")
        #expect(index.manifests[3].annotations?["vnd.docker.reference.type"] == "attestation-manifest")
    }

    @Test func selectPicksTheWantedPlatform() throws {
        let index = try JSONDecoder().decode(ImageIndex.self, from: Data(ociIndexText.utf8))
        let amd64 = try index.select(platform: Platform(architecture: "amd64", os: "linux"))
        #expect(amd64.digest.hex.hasPrefix("5b0bcabd"))
        let arm64 = try index.select(platform: Platform(architecture: "aarch64", os: "linux"))
        #expect(arm64.digest.hex.hasPrefix("1111"))
    }

    @Test func selectErrorListsTheAvailablePlatforms() throws {
        let index = try JSONDecoder().decode(ImageIndex.self, from: Data(ociIndexText.utf8))
        let error = #expect(throws: AtollError.self) {
            try index.select(platform: Platform(architecture: "s390x", os: "linux"))
        }
        #expect(error?.code == .notFound)
        let message = error?.message ?? ""
        #expect(message.contains("linux/s390x"))
        #expect(message.contains("linux/ppc64le, linux/amd64, linux/arm64/v8"))
    }

    @Test func selectPrefersTheExactVariantOverACompatibleOne() throws {
        func entry(_ hexDigit: Character, _ p: Platform) throws -> Descriptor {
            Descriptor(
                mediaType: MediaType.ociManifest, digest: try Digest(hex: String(repeating: hexDigit, count: 64)),
                size: 1, platform: p)
        }
        let index = ImageIndex(manifests: [
            try entry("1", Platform(architecture: "arm", os: "linux", variant: "v6")),
            try entry("2", Platform(architecture: "arm", os: "linux", variant: "v7")),
        ])
        #expect(
            try index.select(platform: Platform(architecture: "arm", os: "linux", variant: "v7")).digest.hex.hasPrefix(
                "2"))
        #expect(try index.select(platform: Platform(architecture: "arm64", os: "linux")).digest.hex.hasPrefix("2"))
        #expect(
            try index.select(platform: Platform(architecture: "arm", os: "linux", variant: "v6")).digest.hex.hasPrefix(
                "1"))
    }

    @Test func ambiguousDocumentIsRejected() {
        // CVE-2021-41190: a document that is both an index and a manifest.
        let text = """
            {"schemaVersion":2,
             "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
               "digest":"sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"}],
             "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":1,
               "digest":"sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"},
             "layers":[]}
            """
        for declared in [nil, MediaType.ociManifest, MediaType.ociIndex] {
            let error = #expect(throws: AtollError.self) {
                try ManifestDocument.parse(data: bytes(text), declaredMediaType: declared)
            }
            #expect(error?.message.contains("ambiguous") == true)
        }
    }

    @Test func indexServedAsManifestIsRejected() {
        let error = #expect(throws: AtollError.self) {
            try ManifestDocument.parse(data: bytes(ociIndexText), declaredMediaType: MediaType.ociManifest)
        }
        #expect(error?.message.contains("contradicts") == true)
    }

    @Test func manifestsWithoutMediaTypeFieldMustStillHaveTheRightShape() {
        let index = ociIndexText.replacingOccurrences(
            of: "\"mediaType\": \"application/vnd.oci.image.index.v1+json\",", with: "")
        #expect(throws: AtollError.self) {
            try ManifestDocument.parse(data: bytes(index), declaredMediaType: MediaType.ociManifest)
        }
        #expect(throws: Never.self) {
            try ManifestDocument.parse(data: bytes(index), declaredMediaType: MediaType.ociIndex)
        }
    }

    @Test func badDocumentsAreRejected() {
        let config =
            #""config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}"#
        let cases: [(String, String?, String)] = [
            (#"{"schemaVersion":1,\#(config),"layers":[]}"#, nil, "schemaVersion 1"),
            (#"{\#(config),"layers":[]}"#, nil, "missing schemaVersion"),
            (#"{"schemaVersion":2,"layers":[]}"#, MediaType.ociManifest, "without \"config\""),
            (#"{"schemaVersion":2,"config":null,"layers":[]}"#, MediaType.ociManifest, "without \"config\""),
            (
                #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.config.v1+json",\#(config)}"#, nil,
                "unsupported media type"
            ),
            (#"{"schemaVersion":2,\#(config),"layers":[]}"#, "text/html", "unsupported media type"),
            (#"{"schemaVersion":2,\#(config),"layers":[]}"#, MediaType.dockerManifest, "without its mediaType field"),
            (
                #"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",\#(config),"layers":[]}"#,
                MediaType.ociManifest, "contradicts"
            ),
            (#"{"schemaVersion":2}"#, nil, "neither a manifest nor an index"),
            (#"[1,2]"#, nil, "invalid manifest"),
            (#"{"schemaVersion":2,"#, nil, "invalid manifest"),
            (
                #"{"schemaVersion":2,"config":{"mediaType":"x","size":-1,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#,
                nil, "negative size"
            ),
            (
                #"{"schemaVersion":2,\#(config),"layers":[{"mediaType":"x","size":1,"digest":"md5:abc"}]}"#, nil,
                "only sha256"
            ),
        ]
        for (text, declared, fragment) in cases {
            let error = #expect(throws: AtollError.self, "\(text)") {
                try ManifestDocument.parse(data: bytes(text), declaredMediaType: declared)
            }
            #expect(error?.message.contains(fragment) == true, "\(text): \(error?.message ?? "no error")")
        }
    }

    @Test func schema1IsUnsupported() {
        let text = #"{"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[{"blobSum":"sha256:a"}]}"#
        let error = #expect(throws: AtollError.self) {
            try ManifestDocument.parse(data: bytes(text), declaredMediaType: MediaType.dockerManifestSchema1Signed)
        }
        #expect(error?.code == .unsupported)
    }

    @Test func oversizedManifestIsRejected() {
        let big = [UInt8](repeating: UInt8(ascii: " "), count: ManifestDocument.maximumSize + 1)
        let error = #expect(throws: AtollError.self) {
            try ManifestDocument.parse(data: big, declaredMediaType: nil)
        }
        #expect(error?.code == .resourceExhausted)
        #expect(ManifestDocument.maximumSize == 4 * 1024 * 1024)
    }

    @Test func canonicalJSONIsSortedWithoutNullsAndRoundTrips() throws {
        let config = Descriptor(
            mediaType: MediaType.ociConfig, digest: Digest.sha256(of: Array("{}".utf8)), size: 2)
        let manifest = ImageManifest(config: config, layers: [], annotations: ["b": "2", "a": "1"])
        let json = try manifest.canonicalJSON()
        let text = String(decoding: json, as: UTF8.self)
        #expect(
            text
                == #"{"annotations":{"a":"1","b":"2"},"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.image.config.v1+json","size":2},"layers":[],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"#
        )
        #expect(try manifest.canonicalJSON() == json)
        #expect(try ManifestDocument.parse(data: json, declaredMediaType: MediaType.ociManifest) == .manifest(manifest))
    }

    @Test func indexCanonicalJSONRoundTrips() throws {
        let index = try JSONDecoder().decode(ImageIndex.self, from: Data(ociIndexText.utf8))
        let json = try index.canonicalJSON()
        #expect(!String(decoding: json, as: UTF8.self).contains("null"))
        #expect(try JSONDecoder().decode(ImageIndex.self, from: Data(json)) == index)
    }

    @Test func subjectAndArtifactTypeAreKept() throws {
        let text = """
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
             "artifactType":"application/vnd.example.sbom",
             "config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,
               "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","data":"e30="},
             "layers":[],
             "subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7682,
               "digest":"sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"}}
            """
        guard case .manifest(let m) = try ManifestDocument.parse(data: bytes(text), declaredMediaType: nil) else {
            Issue.record("expected a manifest")
            return
        }
        #expect(m.artifactType == "application/vnd.example.sbom")
        #expect(m.subject?.size == 7682)
        #expect(m.config.data == "e30=")
    }
}
