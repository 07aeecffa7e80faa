import Crypto
import Foundation

/// A content digest in OCI form, `sha256:<64 lower-case hex digits>`. Only sha256 is accepted:
/// it is what every registry and runtime produces, and one algorithm keeps paths unambiguous.
public struct Digest: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    /// The 64 lower-case hex digits.
    public let hex: String

    public static let algorithm = "sha256"

    /// Parses `sha256:<hex>`, rejecting any other algorithm, length or alphabet.
    public init(parsing string: String) throws {
        guard string.hasPrefix("sha256:") else {
            throw AtollError.invalidArgument("invalid digest \"\(string)\": only sha256 is supported")
        }
        try self.init(hex: String(string.dropFirst(7)))
    }

    /// Wraps 64 lower-case hex digits.
    public init(hex: String) throws {
        guard hex.utf8.count == 64,
            hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else {
            throw AtollError.invalidArgument("invalid digest \"sha256:\(hex)\": want 64 lower-case hex digits")
        }
        self.hex = hex
    }

    private init(trustedHex: String) { self.hex = trustedHex }

    /// The digest of a buffer.
    public static func sha256<D: DataProtocol>(of data: D) -> Digest {
        var hasher = DigestHasher()
        hasher.update(data)
        return hasher.finalize()
    }

    fileprivate static func fromHash(_ hash: SHA256.Digest) -> Digest {
        Digest(trustedHex: hash.map { byteHex[Int($0)] }.joined())
    }

    public var description: String { "sha256:\(hex)" }
    /// The first 12 hex digits, as Docker shows IDs.
    public var shortID: String { String(hex.prefix(12)) }

    public static func < (a: Digest, b: Digest) -> Bool { a.hex < b.hex }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

private let byteHex: [String] = (0..<256).map { String(format: "%02x", $0) }

/// Computes a sha256 digest incrementally, for content that streams past.
public struct DigestHasher {
    private var hash = SHA256()
    public private(set) var count: Int64 = 0

    public init() {}

    public mutating func update<D: DataProtocol>(_ data: D) {
        hash.update(data: data)
        count += Int64(data.count)
    }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        hash.update(bufferPointer: buffer)
        count += Int64(buffer.count)
    }

    public func finalize() -> Digest { Digest.fromHash(hash.finalize()) }
}
