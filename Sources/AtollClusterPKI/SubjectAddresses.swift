import AtollCore
import Foundation
import SwiftASN1
import X509

/// Turns the addresses a node is reached at into subject alternative names: an IPv4 or IPv6
/// literal (an IPv6 one may be bracketed) becomes an IP SAN, anything else a DNS name.
enum SubjectAddresses {
    static func generalNames(for addresses: [String]) throws -> [GeneralName] {
        var names: [GeneralName] = []
        for address in addresses {
            let name: GeneralName
            if let bytes = ipAddressBytes(address) {
                name = .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes)))
            } else {
                guard isValidDNSName(address) else {
                    throw AtollError.invalidArgument(
                        "invalid certificate address \"\(address)\": want an IPv4 or IPv6 address or a DNS name"
                    )
                }
                name = .dnsName(address.lowercased())
            }
            if !names.contains(name) { names.append(name) }
        }
        return names
    }

    /// The 4 or 16 network-order bytes of an IP literal; nil for anything else.
    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        if let v4 = ipv4Bytes(Substring(text)) { return v4 }
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        return ipv6Bytes(text)
    }

    /// Dotted-quad notation, no leading zeros.
    static func ipv4Bytes(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                part.count == 1 || part.first != "0", let octet = UInt8(part)
            else { return nil }
            bytes.append(octet)
        }
        return bytes
    }

    /// RFC 4291 text: up to eight hex groups, one `::`, an optional trailing dotted quad.
    static func ipv6Bytes(_ text: Substring) -> [UInt8]? {
        guard text.contains(":") else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        guard let first = groups(Substring(halves[0]), allowsTrailingIPv4: halves.count == 1) else { return nil }
        head = first
        if halves.count == 2 {
            guard let second = groups(Substring(halves[1]), allowsTrailingIPv4: true) else { return nil }
            tail = second
            guard head.count + tail.count <= 7 else { return nil }
        } else {
            guard head.count == 8 else { return nil }
        }
        let all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        return all.flatMap { [UInt8(truncatingIfNeeded: $0 >> 8), UInt8(truncatingIfNeeded: $0)] }
    }

    private static func groups(_ text: Substring, allowsTrailingIPv4: Bool) -> [UInt16]? {
        if text.isEmpty { return [] }
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        var result: [UInt16] = []
        for (index, field) in fields.enumerated() {
            if index == fields.count - 1, allowsTrailingIPv4, field.contains(".") {
                guard let v4 = ipv4Bytes(field) else { return nil }
                result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                continue
            }
            guard (1...4).contains(field.count), field.allSatisfy(\.isHexDigit), field.allSatisfy(\.isASCII),
                let group = UInt16(field, radix: 16)
            else { return nil }
            result.append(group)
        }
        return result
    }

    /// A host name of ASCII letters, digits, hyphens and dots (a leading `*.` wildcard allowed),
    /// labels of 1–63 characters, 253 at most in all, the last not all digits (so that a mistyped IPv4
    /// address like `10.0.0.256` is refused instead of becoming a DNS name).
    static func isValidDNSName(_ name: String) -> Bool {
        var labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if labels.first == "*" && labels.count > 1 { labels.removeFirst() }
        guard !name.isEmpty, name.utf8.count <= 253,
            let last = labels.last, !last.allSatisfy({ $0.isASCII && $0.isNumber })
        else { return false }
        return labels.allSatisfy { label in
            (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }
}
