import Testing

@testable import AtollOCI

@Suite struct MediaTypeTests {
    @Test func manifestsAndIndexesAreToldApart() {
        #expect(MediaType.isManifest(MediaType.ociManifest))
        #expect(MediaType.isManifest(MediaType.dockerManifest))
        #expect(!MediaType.isManifest(MediaType.ociIndex))
        #expect(MediaType.isIndex(MediaType.ociIndex))
        #expect(MediaType.isIndex(MediaType.dockerManifestList))
        #expect(!MediaType.isIndex(MediaType.dockerManifest))
        #expect(MediaType.isConfig(MediaType.dockerConfig))
        #expect(MediaType.isConfig("application/vnd.oci.image.config.v1+json"))
    }

    @Test func parametersAndCaseAreIgnored() {
        #expect(MediaType.isManifest("Application/VND.oci.image.manifest.v1+json; charset=utf-8"))
        #expect(MediaType.base(" application/json ; q=1") == "application/json")
    }

    @Test func layerCompressionFollowsTheMediaType() {
        let cases: [(String, LayerCompression?)] = [
            ("application/vnd.oci.image.layer.v1.tar", LayerCompression.none),
            ("application/vnd.oci.image.layer.v1.tar+gzip", .gzip),
            ("application/vnd.oci.image.layer.v1.tar+zstd", .zstd),
            ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", .gzip),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", .gzip),
            ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", .gzip),
            ("application/vnd.docker.image.rootfs.diff.tar", LayerCompression.none),
            ("application/vnd.oci.image.manifest.v1+json", nil),
            ("application/octet-stream", nil),
        ]
        for (type, want) in cases {
            #expect(MediaType.layerCompression(type) == want, "\(type)")
            #expect(MediaType.isLayer(type) == (want != nil), "\(type)")
        }
    }

    @Test func foreignAndNondistributableLayersAreRecognised() {
        #expect(MediaType.isNondistributable(MediaType.dockerForeignLayerGzip))
        #expect(MediaType.isNondistributable(MediaType.ociLayerNondistributableZstd))
        #expect(!MediaType.isNondistributable(MediaType.ociLayerGzip))
    }

    @Test func ociLayerTypeIsChosenByCompression() {
        #expect(MediaType.ociLayer(compression: .zstd) == "application/vnd.oci.image.layer.v1.tar+zstd")
        #expect(MediaType.ociLayer(compression: .none) == "application/vnd.oci.image.layer.v1.tar")
    }
}
