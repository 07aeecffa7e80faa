import AtollCore
import AtollOCI
import Foundation
import GRDB

/// `--filter KEY=VALUE` for image lists and prune, as Docker spells them.
struct ImageFilter {
    var dangling: Bool?
    var references: [String] = []
    var labels: [(key: String, value: String?)] = []
    var excludedLabels: [(key: String, value: String?)] = []
    var before: String?
    var since: String?
    /// Only images created before this time (seconds since the epoch).
    var until: Int64?

    static func parse(_ filters: [String]) throws -> ImageFilter {
        var result = ImageFilter()
        for filter in filters {
            guard let equals = filter.firstIndex(of: "=") else {
                throw AtollError.invalidArgument("invalid filter \"\(filter)\": want KEY=VALUE")
            }
            var key = filter[..<equals].lowercased()
            let value = String(filter[filter.index(after: equals)...])
            let negated = key.hasSuffix("!")
            if negated { key.removeLast() }
            if negated && key != "label" {
                throw AtollError.invalidArgument("invalid filter \"\(filter)\": only label can be negated with !=")
            }
            switch key {
            case "dangling":
                guard let flag = Bool(value.lowercased()) else {
                    throw AtollError.invalidArgument("invalid filter \"\(filter)\": dangling takes true or false")
                }
                result.dangling = flag
            case "reference": result.references.append(value)
            case "label":
                let parts = value.split(separator: "=", maxSplits: 1).map(String.init)
                let label = (key: parts.first ?? "", value: parts.count > 1 ? parts[1] : nil)
                if negated { result.excludedLabels.append(label) } else { result.labels.append(label) }
            case "before": result.before = value
            case "since": result.since = value
            case "until": result.until = try parseUntil(value, now: Int64(Date().timeIntervalSince1970))
            default:
                throw AtollError.invalidArgument(
                    "invalid filter \"\(key)\": want dangling, reference, label, before, since or until")
            }
        }
        return result
    }

    func matches(_ summary: ImageSummary, image: ImageRecord, resolve: (String) throws -> ImageRecord) throws -> Bool {
        if let dangling, dangling != summary.repoTags.isEmpty { return false }
        if !references.isEmpty {
            let matched = references.contains { pattern in
                summary.repoTags.contains { tag in
                    Glob.matches(pattern, tag) || Glob.matches(pattern, repository(of: tag))
                }
            }
            if !matched { return false }
        }
        for (key, value) in labels {
            guard let actual = summary.labels[key] else { return false }
            if let value, value != actual { return false }
        }
        for (key, value) in excludedLabels {
            if let actual = summary.labels[key], value == nil || value == actual { return false }
        }
        if let until, summary.created >= until { return false }
        if let before, try summary.created >= resolve(before).created { return false }
        if let since, try summary.created <= resolve(since).created { return false }
        return true
    }
}

/// "registry:5000/app:tag" → "registry:5000/app": the tag's colon is the last one not followed by "/".
func repository(of tag: String) -> String {
    guard let colon = tag.lastIndex(of: ":"), !tag[colon...].contains("/") else { return tag }
    return String(tag[..<colon])
}

/// `until=` as Docker takes it: a Unix timestamp, an RFC 3339 time, or a duration before now
/// ("24h", "1h30m", "90s").
func parseUntil(_ value: String, now: Int64) throws -> Int64 {
    if let seconds = Double(value) { return Int64(seconds) }
    if let date = RFC3339.parse(value) { return Int64(date.timeIntervalSince1970) }
    var total = 0.0
    var number = ""
    let units: [Character: Double] = ["h": 3600, "m": 60, "s": 1]
    for character in value {
        if character.isNumber || character == "." {
            number.append(character)
        } else if let unit = units[character], let amount = Double(number) {
            total += amount * unit
            number = ""
        } else {
            throw AtollError.invalidArgument(
                "invalid until filter \"\(value)\": want a timestamp, an RFC 3339 time or a duration such as 24h")
        }
    }
    guard number.isEmpty, !value.isEmpty else {
        throw AtollError.invalidArgument(
            "invalid until filter \"\(value)\": want a timestamp, an RFC 3339 time or a duration such as 24h")
    }
    return now - Int64(total)
}

/// Shell-style patterns (`*`, `?`) as Docker's reference filter uses them; `*` stops at "/".
enum Glob {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        matches(Array(pattern.utf8)[...], Array(text.utf8)[...])
    }

    private static func matches(_ p: ArraySlice<UInt8>, _ t: ArraySlice<UInt8>) -> Bool {
        guard let first = p.first else { return t.isEmpty }
        switch first {
        case UInt8(ascii: "*"):
            var rest = t
            while true {
                if matches(p.dropFirst(), rest) { return true }
                guard let c = rest.first, c != UInt8(ascii: "/") else { return false }
                rest = rest.dropFirst()
            }
        case UInt8(ascii: "?"):
            guard let c = t.first, c != UInt8(ascii: "/") else { return false }
            return matches(p.dropFirst(), t.dropFirst())
        default:
            guard t.first == first else { return false }
            return matches(p.dropFirst(), t.dropFirst())
        }
    }
}
