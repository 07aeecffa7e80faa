import AtollCore
import Foundation

/// A Docker image reference, parsed and normalised after the grammar of distribution/reference:
/// `[domain/]path[:tag][@sha256:hex]`. Without a domain the reference is on Docker Hub
/// (`docker.io`), where a one-component path gets `library/`; without a tag or digest the tag is
/// `latest`. Encoded (Codable) as its normalised string.
public struct ImageReference: Sendable, Codable, Equatable, Hashable, CustomStringConvertible {
    /// The registry host, with a port if any: `docker.io`, `localhost:5000`, `[::1]:5000`.
    public let domain: String
    /// The repository path inside the registry: `library/busybox`.
    public let path: String
    public let tag: String?
    public let digest: Digest?

    /// Docker Hub's domain.
    public static let defaultDomain = "docker.io"
    /// The tag used when a reference names neither tag nor digest.
    public static let defaultTag = "latest"
    /// The longest repository name (domain and path) accepted.
    public static let maximumNameLength = 255

    private static let legacyDefaultDomain = "index.docker.io"
    private static let officialPrefix = "library/"

    /// Builds a reference from its parts, which are validated as the parser would.
    public init(domain: String, path: String, tag: String? = nil, digest: Digest? = nil) throws {
        var text = "\(domain)/\(path)"
        if let tag { text += ":\(tag)" }
        if let digest { text += "@\(digest)" }
        self = try ImageReference(parsing: text)
    }

    /// Parses and normalises a reference as `docker pull` takes it.
    public init(parsing text: String) throws {
        func fail(_ why: String) -> AtollError {
            AtollError.invalidArgument("invalid reference \"\(text)\": \(why)")
        }
        guard !text.isEmpty else { throw fail("empty reference") }
        if text.utf8.count == 64, ImageReference.isLowerHex(Substring(text)) {
            throw fail("cannot use a 64-digit hexadecimal string as a repository name")
        }
        var rest = Substring(text)
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            let digestText = String(rest[rest.index(after: at)...])
            do {
                digest = try Digest(parsing: digestText)
            } catch {
                throw fail("bad digest \"\(digestText)\", want sha256: and 64 lower-case hex digits")
            }
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let tagText = rest[rest.index(after: colon)...]
            guard ImageReference.isValidTag(tagText) else {
                throw fail("bad tag \"\(tagText)\", want up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")
            }
            tag = String(tagText)
            rest = rest[..<colon]
        }
        guard !rest.isEmpty else { throw fail("missing repository name") }

        var domain = ImageReference.defaultDomain
        var path = rest
        if let slash = rest.firstIndex(of: "/") {
            let first = rest[..<slash]
            if first.contains(".") || first.contains(":") || first == "localhost" || first.lowercased() != first {
                domain = String(first)
                path = rest[rest.index(after: slash)...]
            }
        }
        if domain == ImageReference.legacyDefaultDomain { domain = ImageReference.defaultDomain }
        guard ImageReference.isValidDomain(Substring(domain)) else { throw fail("bad registry domain \"\(domain)\"") }
        guard !path.isEmpty else { throw fail("missing repository path") }
        if path.contains(where: { $0.isUppercase }) {
            throw fail("repository name \"\(path)\" must be lower case")
        }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            guard ImageReference.isValidPathComponent(component) else {
                if component.isEmpty { throw fail("empty path component") }
                throw fail(
                    "bad path component \"\(component)\": want lower-case letters and digits, separated by '.', '_', '__' or dashes"
                )
            }
        }
        var fullPath = String(path)
        if domain == ImageReference.defaultDomain && !fullPath.contains("/") {
            fullPath = ImageReference.officialPrefix + fullPath
        }
        let nameLength = domain.utf8.count + 1 + fullPath.utf8.count
        guard nameLength <= ImageReference.maximumNameLength else {
            throw fail(
                "repository name is \(nameLength) characters long, the limit is \(ImageReference.maximumNameLength)")
        }
        if tag == nil && digest == nil { tag = ImageReference.defaultTag }
        self.domain = domain
        self.path = fullPath
        self.tag = tag
        self.digest = digest
    }

    /// The registry domain `atoll login SERVER` means: a scheme, a path and a trailing slash are
    /// dropped, and Docker Hub's other names (index.docker.io, registry-1.docker.io, its v1 URL)
    /// are `docker.io`. No server at all is Docker Hub.
    public static func registryDomain(ofServer server: String?) throws -> String {
        var text = (server ?? "").trimmingCharacters(in: .whitespaces)
        for scheme in ["https://", "http://"] where text.hasPrefix(scheme) { text.removeFirst(scheme.count) }
        if let slash = text.firstIndex(of: "/") { text = String(text[..<slash]) }
        if text.isEmpty || text == legacyDefaultDomain || text == "registry-1.docker.io" { return defaultDomain }
        guard isValidDomain(Substring(text)) else {
            throw AtollError.invalidArgument("invalid registry \"\(server ?? "")\": want HOST[:PORT]")
        }
        return text
    }

    /// `domain/path`: `docker.io/library/busybox`.
    public var name: String { "\(domain)/\(path)" }

    /// The full normalised reference: `docker.io/library/busybox:latest`.
    public var normalized: String { name + suffix }

    /// The short form Docker shows: `busybox:latest`, `user/app:1`, `quay.io/x/y:2`.
    public var familiar: String { familiarName + suffix }

    /// The repository as Docker shows it: Docker Hub's domain and `library/` left out.
    public var familiarName: String {
        guard domain == ImageReference.defaultDomain else { return name }
        if path.hasPrefix(ImageReference.officialPrefix) {
            let rest = path.dropFirst(ImageReference.officialPrefix.count)
            if !rest.contains("/") { return String(rest) }
        }
        return path
    }

    public var description: String { normalized }

    /// The same repository with another tag (and no digest).
    public func withTag(_ tag: String) throws -> ImageReference {
        try ImageReference(domain: domain, path: path, tag: tag)
    }

    /// The same repository pinned to a digest (and no tag).
    public func withDigest(_ digest: Digest) throws -> ImageReference {
        try ImageReference(domain: domain, path: path, digest: digest)
    }

    private var suffix: String {
        var s = ""
        if let tag { s += ":\(tag)" }
        if let digest { s += "@\(digest)" }
        return s
    }

    /// Whether a string could be a prefix of an image ID: 1–64 lower-case hex digits, optionally
    /// after `sha256:`.
    public static func looksLikeIDPrefix(_ text: String) -> Bool {
        let hex = text.hasPrefix("sha256:") ? text.dropFirst(7) : Substring(text)
        return !hex.isEmpty && hex.utf8.count <= 64 && isLowerHex(hex)
    }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(normalized)
    }

    // MARK: grammar

    private static func isLowerHex(_ s: Substring) -> Bool {
        s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    private static func isLowerAlnum(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) }
    private static func isAlnum(_ c: UInt8) -> Bool { isLowerAlnum(c) || (c >= 0x41 && c <= 0x5A) }

    /// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
    static func isValidPathComponent(_ s: Substring) -> Bool {
        let b = Array(s.utf8)
        guard let first = b.first, let last = b.last, isLowerAlnum(first), isLowerAlnum(last) else { return false }
        var i = 0
        while i < b.count {
            if isLowerAlnum(b[i]) {
                i += 1
                continue
            }
            // A separator run between alphanumerics: ".", "_", "__" or any number of dashes.
            var j = i
            while j < b.count, !isLowerAlnum(b[j]) { j += 1 }
            let sep = b[i..<j]
            let ok: Bool
            switch Array(sep) {
            case [UInt8(ascii: ".")], [UInt8(ascii: "_")], [UInt8(ascii: "_"), UInt8(ascii: "_")]: ok = true
            default: ok = sep.allSatisfy { $0 == UInt8(ascii: "-") }
            }
            guard ok else { return false }
            i = j
        }
        return true
    }

    /// `[\w][\w.-]{0,127}`
    static func isValidTag(_ s: Substring) -> Bool {
        let b = Array(s.utf8)
        guard let first = b.first, b.count <= 128, isAlnum(first) || first == UInt8(ascii: "_") else { return false }
        return b.allSatisfy {
            isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
        }
    }

    /// `host[:port]` where host is a DNS name, an IPv4 address or a bracketed IPv6 address.
    static func isValidDomain(_ s: Substring) -> Bool {
        var host = s
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return false }
            let inside = s[s.index(after: s.startIndex)..<close]
            guard !inside.isEmpty, inside.contains(":"),
                inside.utf8.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") })
            else { return false }
            let after = s[s.index(after: close)...]
            return after.isEmpty || isValidPort(after)
        }
        if let colon = s.firstIndex(of: ":") {
            guard isValidPort(s[colon...]) else { return false }
            host = s[..<colon]
        }
        guard !host.isEmpty else { return false }
        for label in host.split(separator: ".", omittingEmptySubsequences: false) {
            let b = Array(label.utf8)
            guard let first = b.first, let last = b.last, isAlnum(first), isAlnum(last),
                b.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") })
            else { return false }
        }
        return true
    }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
    }

    /// `:` followed by one or more digits.
    private static func isValidPort(_ s: Substring) -> Bool {
        let digits = s.dropFirst()
        return s.first == ":" && !digits.isEmpty && digits.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }
}
