import AtollCore
import GRDB

/// `--filter KEY=VALUE` for image lists and prune, as Docker spells them.
struct ImageFilter {
    var dangling: Bool?
    var references: [String] = []
    var labels: [(key: String, value: String?)] = []
    var before: String?
    var since: String?

    static func parse(_ filters: [String]) throws -> ImageFilter {
        var result = ImageFilter()
        for filter in filters {
            guard let equals = filter.firstIndex(of: "=") else {
                throw AtollError.invalidArgument("invalid filter \"\(filter)\": want KEY=VALUE")
            }
            let key = filter[..<equals].lowercased()
            let value = String(filter[filter.index(after: equals)...])
            switch key {
            case "dangling":
                guard let flag = Bool(value.lowercased()) else {
                    throw AtollError.invalidArgument("invalid filter \"\(filter)\": dangling takes true or false")
                }
                result.dangling = flag
            case "reference": result.references.append(value)
            case "label":
                let parts = value.split(separator: "=", maxSplits: 1).map(String.init)
                result.labels.append((parts.first ?? "", parts.count > 1 ? parts[1] : nil))
            case "before": result.before = value
            case "since": result.since = value
            default:
                throw AtollError.invalidArgument(
                    "invalid filter \"\(key)\": want dangling, reference, label, before or since")
            }
        }
        return result
    }

    func matches(_ summary: ImageSummary, image: ImageRecord, resolve: (String) throws -> ImageRecord) throws -> Bool {
        if let dangling, dangling != summary.repoTags.isEmpty { return false }
        if !references.isEmpty {
            let matched = references.contains { pattern in
                summary.repoTags.contains { tag in
                    Glob.matches(pattern, tag) || Glob.matches(pattern, String(tag.split(separator: ":").first ?? ""))
                }
            }
            if !matched { return false }
        }
        for (key, value) in labels {
            guard let actual = summary.labels[key] else { return false }
            if let value, value != actual { return false }
        }
        if let before, try summary.created >= resolve(before).created { return false }
        if let since, try summary.created <= resolve(since).created { return false }
        return true
    }
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
