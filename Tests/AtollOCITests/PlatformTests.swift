import AtollCore
import Foundation
import Testing

@testable import AtollOCI

@Suite struct PlatformTests {
    @Test func specifiersParseAndNormalise() throws {
        let cases: [(String, String)] = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/arm64/v8", "linux/arm64/v8"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("Linux/AMD64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/i686", "linux/386"),
            ("windows/amd64", "windows/amd64"),
            ("amd64", "\(Platform.host.os)/amd64"),
            ("arm64", "\(Platform.host.os)/arm64/v8"),
        ]
        for (text, want) in cases {
            #expect(try Platform(parsing: text).description == want, "\(text)")
        }
    }

    @Test func loneOSIsCompletedWithTheHostArchitecture() throws {
        let p = try Platform(parsing: "linux")
        #expect(p.os == "linux")
        #expect(p.architecture == Platform.host.architecture)
    }

    @Test func badSpecifiersAreRejected() {
        for text in ["", "linux/", "/amd64", "linux/amd64/v8/x", "nonsense", "linux/am d64"] {
            #expect(throws: AtollError.self, "\(text)") { try Platform(parsing: text) }
        }
    }

    @Test func hostIsNormalised() {
        let host = Platform.host
        #expect(host == host.normalized())
        #if arch(x86_64)
            #expect(host.architecture == "amd64")
        #elseif arch(arm64)
            #expect(host.architecture == "arm64" && host.variant == "v8")
        #endif
        #if os(Linux)
            #expect(host.os == "linux")
        #endif
    }

    @Test func jsonUsesDottedKeys() throws {
        let p = Platform(architecture: "amd64", os: "windows", osVersion: "10.0.17763.1", osFeatures: ["win32k"])
        let text = String(decoding: try JSONEncoder().encode(p), as: UTF8.self)
        #expect(text.contains("\"os.version\":\"10.0.17763.1\""))
        #expect(text.contains("\"os.features\":[\"win32k\"]"))
        #expect(!text.contains("variant"))
        #expect(try JSONDecoder().decode(Platform.self, from: Data(text.utf8)) == p)
    }

    @Test func exactPlatformRanksFirst() throws {
        let m = PlatformMatcher(try Platform(parsing: "linux/arm64/v8"))
        #expect(m.rank(Platform(architecture: "arm64", os: "linux", variant: "v8")) == 0)
        #expect(m.rank(Platform(architecture: "aarch64", os: "linux")) == 0)
        let v7 = try #require(m.rank(Platform(architecture: "arm", os: "linux", variant: "v7")))
        let v6 = try #require(m.rank(Platform(architecture: "arm", os: "linux", variant: "v6")))
        #expect(v7 > 0 && v6 > v7)
        #expect(!m.matches(Platform(architecture: "amd64", os: "linux")))
        #expect(!m.matches(Platform(architecture: "arm64", os: "windows", variant: "v8")))
    }

    @Test func amd64AlsoRuns386ButNotTheOtherWayRound() {
        let amd64 = PlatformMatcher(Platform(architecture: "amd64", os: "linux"))
        #expect(amd64.matches(Platform(architecture: "386", os: "linux")))
        #expect(!amd64.matches(Platform(architecture: "amd64", os: "linux", variant: "v3")))
        let i386 = PlatformMatcher(Platform(architecture: "386", os: "linux"))
        #expect(!i386.matches(Platform(architecture: "amd64", os: "linux")))
        let v3 = PlatformMatcher(Platform(architecture: "amd64", os: "linux", variant: "v3"))
        #expect(v3.rank(Platform(architecture: "amd64", os: "linux", variant: "v2")) == 1)
        #expect(v3.rank(Platform(architecture: "amd64", os: "linux")) == 2)
    }

    @Test func armV7DoesNotRunV8() {
        let m = PlatformMatcher(Platform(architecture: "arm", os: "linux", variant: "v7"))
        #expect(m.matches(Platform(architecture: "arm", os: "linux", variant: "v5")))
        #expect(!m.matches(Platform(architecture: "arm", os: "linux", variant: "v8")))
        #expect(!m.matches(Platform(architecture: "arm64", os: "linux")))
    }

    @Test func bestIndexPrefersTheExactVariant() {
        let m = PlatformMatcher(Platform(architecture: "arm", os: "linux", variant: "v7"))
        let candidates: [Platform?] = [
            nil,
            Platform(architecture: "arm", os: "linux", variant: "v6"),
            Platform(architecture: "arm", os: "linux", variant: "v7"),
            Platform(architecture: "arm", os: "linux", variant: "v7"),
        ]
        #expect(m.bestIndex(candidates) == 2)
        #expect(
            m.less(
                Platform(architecture: "arm", os: "linux"), Platform(architecture: "arm", os: "linux", variant: "v6")))
        #expect(m.bestIndex([Platform(architecture: "s390x", os: "linux")]) == nil)
    }
}
