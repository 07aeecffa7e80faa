import AtollCore
import Foundation
import Testing

@testable import AtollOCI

@Suite struct ArchiveFormatsTests {
    @Test func dockerSaveManifestDecodesWithCapitalisedKeys() throws {
        let text = """
            [{"Config":"blobs/sha256/b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
              "RepoTags":["busybox:latest","busybox:1.36"],
              "Layers":["blobs/sha256/e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"],
              "LayerSources":{"sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f":
                {"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":5,
                 "digest":"sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b",
                 "urls":["https://example.com/layer"]}}},
             {"Config":"abc.json","RepoTags":null,"Layers":["abc/layer.tar"]}]
            """
        let entries = try DockerArchiveManifestEntry.parseList(data: Array(text.utf8))
        #expect(entries.count == 2)
        #expect(entries[0].repoTags == ["busybox:latest", "busybox:1.36"])
        #expect(entries[0].layers.count == 1)
        let source = try #require(entries[0].layerSources?.values.first)
        #expect(source.urls == ["https://example.com/layer"])
        #expect(MediaType.isNondistributable(source.mediaType))
        #expect(entries[1].repoTags == [])
        #expect(entries[1].layerSources == nil)
    }

    @Test func dockerSaveManifestEncodesDockersKeys() throws {
        let entry = DockerArchiveManifestEntry(config: "c.json", repoTags: ["a:b"], layers: ["l/layer.tar"])
        let text = String(decoding: try DockerArchiveManifestEntry.encodeList([entry]), as: UTF8.self)
        #expect(text == #"[{"Config":"c.json","Layers":["l/layer.tar"],"RepoTags":["a:b"]}]"#)
    }

    @Test func dockerSaveManifestWithoutConfigIsRejected() {
        let error = #expect(throws: AtollError.self) {
            try DockerArchiveManifestEntry.parseList(data: Array(#"[{"RepoTags":[]}]"#.utf8))
        }
        #expect(error?.message.contains("Config") == true)
    }

    @Test func ociLayoutFileRoundTripsAndChecksTheVersion() throws {
        let bytes = try OCILayoutFile().canonicalJSON()
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"imageLayoutVersion":"1.0.0"}"#)
        #expect(try OCILayoutFile.parse(data: bytes).imageLayoutVersion == "1.0.0")
        let error = #expect(throws: AtollError.self) {
            try OCILayoutFile.parse(data: Array(#"{"imageLayoutVersion":"2.0.0"}"#.utf8))
        }
        #expect(error?.code == .unsupported)
        #expect(OCILayoutFile.fileName == "oci-layout")
    }

    @Test func ociLayoutIndexCarriesReferenceAnnotations() throws {
        let text = """
            {"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
              "digest":"sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270","size":7682,
              "annotations":{"io.containerd.image.name":"docker.io/library/busybox:latest",
                             "org.opencontainers.image.ref.name":"latest"}}]}
            """
        guard case .index(let index) = try ManifestDocument.parse(data: Array(text.utf8), declaredMediaType: nil) else {
            Issue.record("expected an index")
            return
        }
        let annotations = index.manifests.first?.annotations ?? [:]
        #expect(annotations[Annotation.refName] == "latest")
        #expect(annotations[Annotation.containerdImageName] == "docker.io/library/busybox:latest")
        #expect(OCIImageLayout.indexFileName == "index.json")
    }

    @Test func blobPathsFollowTheLayout() throws {
        let digest = Digest.sha256(of: Array("{}".utf8))
        #expect(OCIImageLayout.blobPath(digest) == "blobs/sha256/\(digest.hex)")
    }

    @Test func emptyObjectAcceptsObjectsAndNull() throws {
        let decoded = try JSONDecoder().decode(
            [String: EmptyObject].self, from: Data(#"{"a":{},"b":null,"c":{"x":1}}"#.utf8))
        #expect(decoded.count == 3)
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode([String: EmptyObject].self, from: Data(#"{"a":1}"#.utf8))
        }
        #expect(String(decoding: try JSONEncoder().encode(EmptyObject()), as: UTF8.self) == "{}")
    }
}
