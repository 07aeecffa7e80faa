import Testing

@testable import AtollImages

/// Archive member names are only ever keys: cleaning them can never climb above the archive.
@Suite struct ArchiveNameTests {
    @Test(arguments: [
        ("./manifest.json", "", "manifest.json"),
        ("/blobs/sha256/abc", "", "blobs/sha256/abc"),
        ("a/./b//c", "", "a/b/c"),
        ("../../../etc/passwd", "", "etc/passwd"),
        ("../layer.tar", "abc", "layer.tar"),
        ("../def/layer.tar", "abc", "def/layer.tar"),
        ("..", "", ""),
    ])
    func namesAreCleanedLexicallyAndNeverClimbOut(name: String, base: String, expected: String) {
        #expect(ArchiveFileReader.clean(name, relativeTo: base) == expected)
    }
}

@Suite struct ImageFilterTests {
    @Test func globsMatchDockerStyleReferencePatterns() {
        #expect(Glob.matches("busy*", "busybox"))
        #expect(Glob.matches("*box:latest", "busybox:latest"))
        #expect(!Glob.matches("*", "library/busybox"), "* does not cross a slash")
        #expect(Glob.matches("*/*", "library/busybox"))
        #expect(Glob.matches("b?sybox", "busybox"))
        #expect(!Glob.matches("b?sybox", "bsybox"))
    }

    @Test func filtersParseAndRejectUnknownKeys() throws {
        let filter = try ImageFilter.parse(["dangling=true", "label=a=b", "label=c", "reference=busy*"])
        #expect(filter.dangling == true)
        #expect(filter.labels.count == 2)
        #expect(filter.labels[0].key == "a" && filter.labels[0].value == "b")
        #expect(filter.labels[1].key == "c" && filter.labels[1].value == nil)
        #expect(filter.references == ["busy*"])
        #expect(throws: (any Error).self) { try ImageFilter.parse(["color=red"]) }
        #expect(throws: (any Error).self) { try ImageFilter.parse(["dangling=maybe"]) }
        #expect(throws: (any Error).self) { try ImageFilter.parse(["novalue"]) }
    }

    @Test func summariesMatchDanglingLabelAndReferenceFilters() throws {
        let image = ImageRecord(
            id: "sha256:" + String(repeating: "a", count: 64), manifestDigest: "", manifestMediaType: "",
            manifestSize: 0,
            created: 100, stored: 100, size: 0, topChainID: "")
        var summary = ImageSummary(
            id: image.id, repoTags: ["busybox:latest"], repoDigests: [], created: 100, size: 0, sharedSize: 0,
            containers: 0, labels: ["tier": "base"], targetDigest: "")
        let noResolve: (String) throws -> ImageRecord = { _ in image }
        #expect(try ImageFilter.parse(["dangling=false"]).matches(summary, image: image, resolve: noResolve))
        #expect(try !ImageFilter.parse(["dangling=true"]).matches(summary, image: image, resolve: noResolve))
        #expect(try ImageFilter.parse(["label=tier=base"]).matches(summary, image: image, resolve: noResolve))
        #expect(try !ImageFilter.parse(["label=tier=app"]).matches(summary, image: image, resolve: noResolve))
        #expect(try ImageFilter.parse(["reference=busybox"]).matches(summary, image: image, resolve: noResolve))
        #expect(try !ImageFilter.parse(["reference=alpine"]).matches(summary, image: image, resolve: noResolve))
        #expect(try !ImageFilter.parse(["label!=tier"]).matches(summary, image: image, resolve: noResolve))
        #expect(try ImageFilter.parse(["label!=tier=app"]).matches(summary, image: image, resolve: noResolve))
        #expect(try ImageFilter.parse(["until=200"]).matches(summary, image: image, resolve: noResolve))
        #expect(try !ImageFilter.parse(["until=50"]).matches(summary, image: image, resolve: noResolve))
        summary.repoTags = []
        #expect(try ImageFilter.parse(["dangling=true"]).matches(summary, image: image, resolve: noResolve))
    }
}

@Suite struct UntilFilterTests {
    @Test func untilTakesTimestampsDatesAndDurations() throws {
        #expect(try parseUntil("1700000000", now: 0) == 1_700_000_000)
        #expect(try parseUntil("2024-01-01T00:00:00Z", now: 0) == 1_704_067_200)
        #expect(try parseUntil("24h", now: 100_000) == 100_000 - 86_400)
        #expect(try parseUntil("1h30m", now: 10_000) == 10_000 - 5_400)
        #expect(throws: (any Error).self) { try parseUntil("yesterday", now: 0) }
    }

    @Test func theRepositoryOfATagKeepsARegistryPort() {
        #expect(repository(of: "localhost:5000/app:1.0") == "localhost:5000/app")
        #expect(repository(of: "busybox:latest") == "busybox")
        #expect(repository(of: "localhost:5000/app") == "localhost:5000/app")
    }
}
