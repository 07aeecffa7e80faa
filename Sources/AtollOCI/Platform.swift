import AtollCore
import Foundation

/// The platform an image runs on, as the OCI image index and config spell it.
public struct Platform: Sendable, Codable, Equatable, Hashable, CustomStringConvertible {
    /// CPU architecture in Go's spelling: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`.
    public var architecture: String
    /// Operating system in Go's spelling: `linux`, `windows`, `darwin`, `freebsd`.
    public var os: String
    /// CPU variant: `v6`, `v7` and `v8` on ARM; `v2`, `v3` on amd64.
    public var variant: String?
    /// The operating system's version (used for Windows images).
    public var osVersion: String?
    /// Required operating system features (used for Windows images).
    public var osFeatures: [String]?

    enum CodingKeys: String, CodingKey {
        case architecture, os, variant
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    public init(
        architecture: String, os: String, variant: String? = nil, osVersion: String? = nil,
        osFeatures: [String]? = nil
    ) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
        self.osVersion = osVersion
        self.osFeatures = osFeatures
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        architecture = try c.decodeIfPresent(String.self, forKey: .architecture) ?? ""
        os = try c.decodeIfPresent(String.self, forKey: .os) ?? ""
        variant = try c.decodeIfPresent(String.self, forKey: .variant)
        osVersion = try c.decodeIfPresent(String.self, forKey: .osVersion)
        osFeatures = try c.decodeIfPresent([String].self, forKey: .osFeatures)
    }

    /// `os/architecture[/variant]`, as `docker --platform` takes it.
    public var description: String {
        var s = "\(os)/\(architecture)"
        if let variant, !variant.isEmpty { s += "/\(variant)" }
        return s
    }

    private static let knownOS: Set<String> = [
        "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
        "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
    ]
    private static let knownArchitectures: Set<String> = [
        "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64",
        "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64",
        "s390", "s390x", "sparc", "sparc64", "wasm",
    ]

    /// Parses a platform specifier: `os/arch[/variant]`, or a lone OS or architecture, which is
    /// completed from the host (`linux` → `linux/<host arch>`, `arm64` → `linux/arm64/v8`).
    /// The result is normalised (`x86_64` → `amd64`, `aarch64` → `arm64` …).
    public init(parsing specifier: String) throws {
        func fail(_ why: String) -> AtollError {
            AtollError.invalidArgument("invalid platform \"\(specifier)\": \(why)")
        }
        let parts = specifier.split(separator: "/", omittingEmptySubsequences: false).map {
            $0.lowercased()
        }
        let component = /^[a-z0-9_.-]+$/
        for part in parts where part.wholeMatch(of: component) == nil {
            throw fail(part.isEmpty ? "empty component" : "bad component \"\(part)\"")
        }
        switch parts.count {
        case 1:
            let os = Platform.normalizeOS(parts[0])
            if Platform.knownOS.contains(os) {
                var host = Platform.host
                host.os = os
                self = host
                return
            }
            let (arch, variant) = Platform.normalizeArchitecture(parts[0], variant: nil)
            guard Platform.knownArchitectures.contains(arch) else {
                throw fail("unknown operating system or architecture")
            }
            self = Platform(architecture: arch, os: Platform.host.os, variant: variant)
        case 2, 3:
            let (arch, variant) = Platform.normalizeArchitecture(parts[1], variant: parts.count == 3 ? parts[2] : nil)
            self = Platform(architecture: arch, os: Platform.normalizeOS(parts[0]), variant: variant)
        default:
            throw fail("want os/architecture[/variant]")
        }
    }

    /// The platform this process runs on, normalised.
    public static var host: Platform {
        #if os(Linux)
            let os = "linux"
        #elseif os(macOS)
            let os = "darwin"
        #elseif os(Windows)
            let os = "windows"
        #else
            let os = "unknown"
        #endif
        #if arch(x86_64)
            return Platform(architecture: "amd64", os: os)
        #elseif arch(arm64)
            return Platform(architecture: "arm64", os: os, variant: "v8")
        #elseif arch(arm)
            return Platform(architecture: "arm", os: os, variant: "v7")
        #elseif arch(i386)
            return Platform(architecture: "386", os: os)
        #elseif arch(powerpc64le)
            return Platform(architecture: "ppc64le", os: os)
        #elseif arch(s390x)
            return Platform(architecture: "s390x", os: os)
        #elseif arch(riscv64)
            return Platform(architecture: "riscv64", os: os)
        #else
            return Platform(architecture: "unknown", os: os)
        #endif
    }

    /// The same platform in canonical spelling: Go's architecture names, ARM variants as `vN`
    /// (`arm64` defaults to `v8`, `arm` to `v7`), amd64's baseline `v1` dropped, OS in lower case.
    public func normalized() -> Platform {
        var p = self
        p.os = Platform.normalizeOS(os)
        (p.architecture, p.variant) = Platform.normalizeArchitecture(architecture, variant: variant)
        return p
    }

    static func normalizeOS(_ os: String) -> String {
        let lower = os.lowercased()
        return lower == "macos" ? "darwin" : lower
    }

    static func normalizeArchitecture(_ architecture: String, variant: String?) -> (String, String?) {
        let arch = architecture.lowercased()
        var variant = variant?.lowercased()
        if variant == "" { variant = nil }
        switch arch {
        case "i386", "i486", "i586", "i686", "386":
            return ("386", nil)
        case "x86_64", "x86-64", "amd64":
            if variant == "v1" { variant = nil }
            return ("amd64", variant)
        case "aarch64", "arm64":
            switch variant {
            case nil, "8", "v8", "v8.0": return ("arm64", "v8")
            default: return ("arm64", variant)
            }
        case "armhf":
            return ("arm", "v7")
        case "armel":
            return ("arm", "v6")
        case "arm", "armv7l", "armv7", "armv6l", "armv6", "armv5l", "armv5", "armv5tel":
            if variant == nil, arch.hasPrefix("armv"), let digit = arch.dropFirst(4).first {
                return ("arm", "v\(digit)")
            }
            switch variant {
            case nil, "7": return ("arm", "v7")
            case "5", "6", "8": return ("arm", "v\(variant ?? "")")
            default: return ("arm", variant)
            }
        case "ppc64el":
            return ("ppc64le", variant)
        default:
            return (arch, variant)
        }
    }
}

/// Decides whether a platform suits a wanted one and ranks the candidates, after containerd's
/// `platforms.Only`: the exact platform first, then the ones that the wanted platform can also run,
/// best first (`arm64/v8` also runs `arm/v7`, `arm/v6`, `arm/v5`; `amd64/v3` also runs `amd64/v2`,
/// `amd64`, `386`; `arm/v7` also runs `arm/v6`, `arm/v5`). Both sides are normalised first.
public struct PlatformMatcher: Sendable, Equatable {
    /// The wanted platform, normalised.
    public let wanted: Platform
    /// The platforms accepted, best first.
    public let compatible: [Platform]

    public init(_ wanted: Platform) {
        let w = wanted.normalized()
        self.wanted = w
        var vector = [w]
        func add(_ arch: String, _ variant: String?) {
            vector.append(Platform(architecture: arch, os: w.os, variant: variant, osVersion: w.osVersion))
        }
        switch w.architecture {
        case "amd64":
            let level = PlatformMatcher.level(w.variant, prefix: "v") ?? 1
            if level > 1 {
                for l in stride(from: level - 1, through: 2, by: -1) { add("amd64", "v\(l)") }
                add("amd64", nil)
            }
            add("386", nil)
        case "arm64":
            if w.variant != "v8" { add("arm64", "v8") }
            for l in [7, 6, 5] { add("arm", "v\(l)") }
        case "arm":
            if let level = PlatformMatcher.level(w.variant, prefix: "v"), level > 5 {
                for l in stride(from: level - 1, through: 5, by: -1) { add("arm", "v\(l)") }
            }
        default:
            break
        }
        compatible = vector
    }

    private static func level(_ variant: String?, prefix: String) -> Int? {
        guard let variant, variant.hasPrefix(prefix) else { return nil }
        return Int(variant.dropFirst(prefix.count).prefix { $0 != "." })
    }

    /// The candidate's rank: 0 for the wanted platform itself, higher for less preferred ones, nil
    /// when it does not suit.
    public func rank(_ candidate: Platform) -> Int? {
        let c = candidate.normalized()
        return compatible.firstIndex { p in
            p.os == c.os && p.architecture == c.architecture && p.variant == c.variant
                && osVersionMatches(c)
        }
    }

    /// Whether the candidate suits the wanted platform.
    public func matches(_ candidate: Platform) -> Bool { rank(candidate) != nil }

    /// Whether `a` is preferred over `b`: a suitable platform before an unsuitable one, then by rank.
    public func less(_ a: Platform, _ b: Platform) -> Bool {
        switch (rank(a), rank(b)) {
        case (let x?, let y?): return x < y
        case (.some, nil): return true
        default: return false
        }
    }

    /// The index of the best suitable candidate (the first one among equals), or nil.
    public func bestIndex(_ candidates: [Platform?]) -> Int? {
        var best: (index: Int, rank: Int)?
        for (i, candidate) in candidates.enumerated() {
            guard let candidate, let r = rank(candidate) else { continue }
            if best == nil || r < (best?.rank ?? Int.max) { best = (i, r) }
        }
        return best?.index
    }

    /// Windows images must match the host's build (major.minor.build); elsewhere os.version is ignored.
    private func osVersionMatches(_ c: Platform) -> Bool {
        guard wanted.os == "windows", let want = wanted.osVersion, let have = c.osVersion else { return true }
        func build(_ v: String) -> [Substring] { Array(v.split(separator: ".").prefix(3)) }
        return build(want) == build(have)
    }
}
