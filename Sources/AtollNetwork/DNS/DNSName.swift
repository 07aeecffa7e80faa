import AtollCore

/// A domain name as a list of labels (raw bytes, at most 63 each, at most 255 bytes on the wire).
/// Equality and hashing ignore ASCII case, as DNS does.
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    /// The labels, most specific first, without the empty root label.
    public private(set) var labels: [[UInt8]]

    /// The root name (".").
    public static let root = DNSName(unchecked: [])

    private init(unchecked labels: [[UInt8]]) { self.labels = labels }

    /// Builds a name from labels; nil if a label is empty or longer than 63 bytes, or the name
    /// would be longer than 255 bytes on the wire.
    public init?(labels: [[UInt8]]) {
        guard labels.allSatisfy({ (1...63).contains($0.count) }),
            labels.reduce(1, { $0 + 1 + $1.count }) <= 255
        else { return nil }
        self.labels = labels
    }

    /// Parses dotted text ("web.example.", "web"); a trailing dot is optional; "." is the root.
    /// No escapes: a label cannot contain a dot. Nil for empty labels or lengths over the limits.
    public init?(_ text: some StringProtocol) {
        var text = Substring(text)
        if text == "." {
            self = .root
            return
        }
        if text.hasSuffix(".") { text = text.dropLast() }
        guard !text.isEmpty else { return nil }
        self.init(labels: text.split(separator: ".", omittingEmptySubsequences: false).map { Array($0.utf8) })
    }

    /// Length of the name on the wire without compression (labels, length bytes and the root byte).
    public var wireLength: Int { labels.reduce(1) { $0 + 1 + $1.count } }

    /// The name in lower case, labels joined by dots, without a trailing dot; bytes other than
    /// printable ASCII, and dots or backslashes inside a label, are escaped as `\DDD`, so such a
    /// name never equals a plain record name.
    public var key: String {
        labels.map { label in
            var text = ""
            for byte in label {
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): text.unicodeScalars.append(Unicode.Scalar(byte + 32))
                case 0x21...0x7e where byte != UInt8(ascii: ".") && byte != UInt8(ascii: "\\"):
                    text.unicodeScalars.append(Unicode.Scalar(byte))
                default:
                    text += "\\" + String(format3: byte)
                }
            }
            return text
        }.joined(separator: ".")
    }

    /// Dotted text with a trailing dot, in the original case (escaped like `key`).
    public var description: String {
        guard !labels.isEmpty else { return "." }
        return
            labels.map { label in
                label.map { byte in
                    (0x21...0x7e).contains(byte) && byte != UInt8(ascii: ".") && byte != UInt8(ascii: "\\")
                        ? String(Unicode.Scalar(byte)) : "\\" + String(format3: byte)
                }.joined()
            }.joined(separator: ".") + "."
    }

    /// The labels in lower case, for comparison and compression.
    var lowercasedLabels: [[UInt8]] {
        labels.map { $0.map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 + 32 : $0 } }
    }

    public static func == (a: DNSName, b: DNSName) -> Bool { a.lowercasedLabels == b.lowercasedLabels }

    public func hash(into hasher: inout Hasher) { hasher.combine(lowercasedLabels) }

    /// The reverse-lookup name of an address: "4.3.2.1.in-addr.arpa" or the 32 nibbles of
    /// "ip6.arpa".
    public init(reverseOf address: IPAddress) {
        let labels: [[UInt8]]
        switch address {
        case .v4(let v4):
            labels = v4.bytes.reversed().map { Array(String($0).utf8) } + [Array("in-addr".utf8), Array("arpa".utf8)]
        case .v6(let v6):
            let nibbles = v6.bytes.reversed().flatMap { [$0 & 0x0f, $0 >> 4] }
            labels =
                nibbles.map { [Array("0123456789abcdef".utf8)[Int($0)]] } + [Array("ip6".utf8), Array("arpa".utf8)]
        }
        self.init(unchecked: labels)
    }

    /// The address a reverse-lookup name stands for; nil if this is not a complete in-addr.arpa
    /// or ip6.arpa name.
    public var reverseAddress: IPAddress? {
        let lower = lowercasedLabels
        if lower.count == 6, lower[4] == Array("in-addr".utf8), lower[5] == Array("arpa".utf8) {
            var bytes: [UInt8] = []
            for label in lower[0..<4].reversed() {
                guard (1...3).contains(label.count), label.allSatisfy({ (0x30...0x39).contains($0) }),
                    label.count == 1 || label[0] != 0x30,
                    let octet = UInt8(String(decoding: label, as: UTF8.self))
                else { return nil }
                bytes.append(octet)
            }
            return IPAddress(bytes: bytes)
        }
        if lower.count == 34, lower[32] == Array("ip6".utf8), lower[33] == Array("arpa".utf8) {
            var nibbles: [UInt8] = []
            for label in lower[0..<32].reversed() {
                guard label.count == 1 else { return nil }
                switch label[0] {
                case 0x30...0x39: nibbles.append(label[0] - 0x30)
                case 0x61...0x66: nibbles.append(label[0] - 0x61 + 10)
                default: return nil
                }
            }
            let bytes = stride(from: 0, to: 32, by: 2).map { nibbles[$0] << 4 | nibbles[$0 + 1] }
            return IPAddress(bytes: bytes)
        }
        return nil
    }
}

extension String {
    /// A byte as three decimal digits, as in `\DDD` escapes.
    fileprivate init(format3 byte: UInt8) {
        let digits = String(byte)
        self = String(repeating: "0", count: 3 - digits.count) + digits
    }
}
