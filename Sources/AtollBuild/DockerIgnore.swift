import AtollCore
import Glibc

/// The patterns of a .dockerignore file, with Docker's semantics (moby/patternmatcher and its
/// `ignorefile.ReadAll`):
///
/// - each pattern is trimmed and cleaned like Go's `filepath.Clean`, and a leading "/" is removed,
///   so "/a", "./a" and "a/" are the same pattern;
/// - a pattern starting with "!" is an exception: it re-includes what it matches;
/// - the last pattern that matches a path decides whether it is excluded;
/// - the syntax is Go's `filepath.Match` (`*` and `?` do not match "/", `[a-z]`, `[^a-z]`, `\`
///   escapes the next character) plus `**`, which matches any number of directories, none
///   included (`**/*.go`, `a/**/b`, `a/**`; `**` alone matches everything);
/// - a pattern also matches a path when it matches one of the path's parent directories, so
///   `node_modules` excludes `node_modules/x/y` and `*/temp*` excludes `somedir/temporary/x`.
///
/// Like Docker, `[!x]` is not a negated class: it matches "!" or "x" (only `[^x]` negates), and
/// `**name` (no "/" after the `**`) matches any path ending in "name". Where Docker's translation
/// to a regular expression garbles a pattern (`^` outside brackets, `\` before a letter, `*` inside
/// brackets), this follows `filepath.Match`: those characters are literal.
public struct DockerIgnore: Sendable, Equatable {
    /// The patterns as cleaned, in order; an exception keeps its leading "!".
    public let patterns: [String]
    private let rules: [Rule]

    /// Compiles patterns (one per element, as in a .dockerignore line but without comment
    /// handling). Blank patterns are skipped. A malformed pattern (an unclosed `[`, a trailing `\`,
    /// a lone `!`) throws `invalidArgument` naming it.
    public init(patterns: [String]) throws {
        try self.init(patterns: patterns, source: nil)
    }

    /// Parses the text of a .dockerignore file: one pattern per line; a line starting with `#` is a
    /// comment, blank lines are skipped, a leading byte-order mark is ignored.
    public init(contentsOf text: String) throws {
        try self.init(patterns: Self.lines(of: text), source: nil)
    }

    /// Reads `contextDirectory/.dockerignore`; no such file means no patterns.
    public static func load(contextDirectory: String) throws -> DockerIgnore {
        let path = (contextDirectory.hasSuffix("/") ? contextDirectory : contextDirectory + "/") + ".dockerignore"
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(path, limit: 16 << 20)
        } catch let error as SystemCallError where error.errno == ENOENT {
            return try DockerIgnore(patterns: [])
        } catch {
            throw AtollError.invalidArgument("cannot read \"\(path)\"", cause: error)
        }
        return try DockerIgnore(patterns: lines(of: String(decoding: bytes, as: UTF8.self)), source: path)
    }

    private init(patterns raw: [String], source: String?) throws {
        var patterns: [String] = []
        var rules: [Rule] = []
        for text in raw {
            guard let (isException, pattern) = try Self.normalize(text, source: source) else { continue }
            let tokens: [Token]
            do {
                tokens = try Self.compile(pattern)
            } catch {
                let place = source.map { " in \"\($0)\"" } ?? ""
                throw AtollError.invalidArgument(
                    "invalid .dockerignore pattern \"\(text)\"\(place): \(error.message)")
            }
            patterns.append(isException ? "!" + pattern : pattern)
            rules.append(Rule(isException: isException, tokens: tokens))
        }
        self.patterns = patterns
        self.rules = rules
    }

    /// Whether the context-relative path (no leading "/", "/"-separated, e.g. "src/a.txt") is excluded.
    /// The context itself ("" or ".") never is.
    public func excludes(_ path: String) -> Bool {
        guard !rules.isEmpty else { return false }
        var cleaned = Self.clean(path)
        if cleaned.hasPrefix("/") { cleaned.removeFirst() }
        if cleaned.isEmpty || cleaned == "." { return false }
        let scalars = cleaned.unicodeScalars.map(\.value)
        let ends = scalars.indices.filter { scalars[$0] == slash } + [scalars.count]
        var matcher = Matcher()
        var excluded = false
        for rule in rules {
            let matched = ends.contains { matcher.matches(rule, scalars, count: $0) }
            if matched { excluded = !rule.isException }
        }
        return excluded
    }

    /// Whether a directory that is excluded may still contain included entries (some `!` pattern
    /// could match below it), so the walker must descend into it.
    public func mayIncludeBelow(_ directory: String) -> Bool {
        var cleaned = Self.clean(directory)
        if cleaned.hasPrefix("/") { cleaned.removeFirst() }
        let prefix = cleaned.isEmpty || cleaned == "." ? [] : cleaned.unicodeScalars.map(\.value) + [slash]
        var matcher = Matcher()
        return rules.contains { $0.isException && matcher.mayMatchBeyond($0.tokens, prefix) }
    }

    // MARK: - Evaluation during a walk

    /// Whether `path` is excluded, given for each pattern whether it matched the parent directory
    /// or one of its ancestors (nil at the top of the context). Returns the same for `path`, to pass
    /// to its children. Like Docker's `MatchesUsingParentResults`, but without its skipping of
    /// patterns (which loses parent matches), so it always agrees with `excludes`.
    func evaluate(_ path: String, parent: [Bool]?, matcher: inout Matcher) -> (excluded: Bool, matched: [Bool]) {
        guard !rules.isEmpty else { return (false, []) }
        let scalars = path.unicodeScalars.map(\.value)
        var excluded = false
        var matched = parent ?? [Bool](repeating: false, count: rules.count)
        for (index, rule) in rules.enumerated() {
            if !matched[index] { matched[index] = matcher.matches(rule, scalars, count: scalars.count) }
            if matched[index] { excluded = !rule.isException }
        }
        return (excluded, matched)
    }

    // MARK: - Patterns

    struct Rule: Sendable, Equatable {
        var isException: Bool
        var tokens: [Token]
        /// The pattern's scalars when it has no wildcards: matching is a comparison.
        var literal: [UInt32]?

        init(isException: Bool, tokens: [Token]) {
            self.isException = isException
            self.tokens = tokens
            var literal: [UInt32] = []
            for token in tokens {
                guard case .literal(let scalar) = token else {
                    self.literal = nil
                    return
                }
                literal.append(scalar)
            }
            self.literal = literal
        }
    }

    /// One element of a compiled pattern; they match a sequence of Unicode scalars.
    enum Token: Sendable, Equatable {
        /// This scalar.
        case literal(UInt32)
        /// `?`: one scalar other than "/".
        case anyCharacter
        /// `*`: any run of scalars without "/".
        case star
        /// `**` (with its "/") before more pattern: nothing, or anything ending in "/".
        case directories
        /// `**` at the end: anything at all.
        case anything
        /// `[...]`: one scalar in (or, negated, not in) the ranges.
        case characterClass(negated: Bool, ranges: [ClosedRange<UInt32>])
    }

    struct PatternError: Error {
        var message: String
    }

    /// A .dockerignore text as its pattern lines (Go's `ignorefile.ReadAll`): comments are lines
    /// whose very first character is "#".
    static func lines(of text: String) -> [String] {
        var lines: [String] = []
        for (number, bytes) in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .enumerated()
        {
            var line = String(decoding: bytes, as: UTF8.self)
            if number == 0 && line.hasPrefix("\u{FEFF}") { line.removeFirst() }
            if line.hasPrefix("#") { continue }
            lines.append(line)
        }
        return lines
    }

    /// One raw pattern as (isException, cleaned pattern), nil when blank.
    static func normalize(_ text: String, source: String?) throws -> (Bool, String)? {
        var pattern = trimmed(Substring(text))
        if pattern.isEmpty { return nil }
        let isException = pattern.hasPrefix("!")
        if isException { pattern = trimmed(pattern.dropFirst()) }
        var cleaned = String(pattern)
        if !cleaned.isEmpty {
            cleaned = clean(cleaned)
            if cleaned.count > 1 && cleaned.hasPrefix("/") { cleaned.removeFirst() }
        }
        // moby cleans "!" + pattern once more, which turns "!/" into "!".
        if isException && (cleaned.isEmpty || cleaned == "/") {
            let place = source.map { " in \"\($0)\"" } ?? ""
            throw AtollError.invalidArgument(
                "invalid .dockerignore pattern \"\(text)\"\(place): an exception needs a pattern after \"!\"")
        }
        return (isException, cleaned)
    }

    private static func trimmed(_ text: Substring) -> Substring {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return Substring(scalars[first...last])
    }

    /// Go's `path.Clean`: one "/" between elements, no "." elements, ".." folded into its parent
    /// (dropped at the root of a rooted path), "." for nothing.
    static func clean(_ path: String) -> String {
        if path.isEmpty { return "." }
        let rooted = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                if let last = parts.last, last != ".." {
                    parts.removeLast()
                } else if !rooted {
                    parts.append(part)
                }
                continue
            }
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        if rooted { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }

    /// Compiles a cleaned pattern, checking its syntax as `filepath.Match` does.
    static func compile(_ pattern: String) throws(PatternError) -> [Token] {
        let scalars = pattern.unicodeScalars.map(\.value)
        var tokens: [Token] = []
        // moby's matchType: a pattern that starts with "**" and has only literals after it is
        // matched as a plain suffix ("**foo" matches "xfoo").
        var onlyLiterals = true
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            index += 1
            switch scalar {
            case star:
                if index < scalars.count && scalars[index] == star {
                    index += 1
                    if index < scalars.count && scalars[index] == slash { index += 1 }
                    tokens.append(index == scalars.count ? .anything : .directories)
                    if tokens.count > 1 { onlyLiterals = false }
                } else {
                    tokens.append(.star)
                    onlyLiterals = false
                }
            case question:
                tokens.append(.anyCharacter)
                onlyLiterals = false
            case backslash:
                guard index < scalars.count else { throw PatternError(message: "it ends with an escape (\\)") }
                tokens.append(.literal(scalars[index]))
                index += 1
                onlyLiterals = false
            case openBracket:
                tokens.append(try characterClass(scalars, &index))
                onlyLiterals = false
            case closeBracket:
                tokens.append(.literal(scalar))
                onlyLiterals = false
            default:
                tokens.append(.literal(scalar))
            }
        }
        if onlyLiterals, tokens.first == .directories, scalars.count > 2, scalars[2] != slash {
            tokens[0] = .anything
        }
        return tokens
    }

    /// Parses a character class after its "[", as `filepath.Match` does: non-empty, "^" negates,
    /// `lo-hi` ranges, `\` escapes, "]" closes it (and cannot be its first member).
    private static func characterClass(_ scalars: [UInt32], _ index: inout Int) throws(PatternError) -> Token {
        func member() throws(PatternError) -> UInt32 {
            guard index < scalars.count, scalars[index] != hyphen, scalars[index] != closeBracket else {
                throw PatternError(message: "malformed character class")
            }
            if scalars[index] == backslash { index += 1 }
            guard index + 1 < scalars.count else { throw PatternError(message: "unclosed character class") }
            defer { index += 1 }
            return scalars[index]
        }
        var negated = false
        if index < scalars.count && scalars[index] == caret {
            negated = true
            index += 1
        }
        var ranges: [ClosedRange<UInt32>] = []
        while true {
            if index < scalars.count && scalars[index] == closeBracket && !ranges.isEmpty {
                index += 1
                return .characterClass(negated: negated, ranges: ranges)
            }
            let low = try member()
            var high = low
            if scalars[index] == hyphen {
                index += 1
                high = try member()
            }
            guard low <= high else { throw PatternError(message: "character class range is out of order") }
            ranges.append(low...high)
        }
    }

    // MARK: - Matching

    /// Runs compiled patterns over paths, reusing its buffers.
    struct Matcher {
        private var current: [Bool] = []
        private var next: [Bool] = []

        /// Whether the rule's pattern matches all of `path[0..<count]`.
        mutating func matches(_ rule: Rule, _ path: [UInt32], count: Int) -> Bool {
            if let literal = rule.literal {
                return literal.count == count
                    && literal.withUnsafeBufferPointer { literal in
                        path.withUnsafeBufferPointer { literal.elementsEqual($0.prefix(count)) }
                    }
            }
            reset(count)
            for token in rule.tokens {
                guard step(token, path, count: count) else { return false }
            }
            return current[count]
        }

        /// Whether `tokens` could match some path that starts with `prefix` and is longer: whether
        /// the pattern can consume all of the prefix and still go on.
        mutating func mayMatchBeyond(_ tokens: [Token], _ prefix: [UInt32]) -> Bool {
            let count = prefix.count
            reset(count)
            for token in tokens {
                // The tokens so far matched the whole prefix, and some remain.
                if current[count] { return true }
                switch token {
                case .anything, .directories: return true
                default: break
                }
                guard step(token, prefix, count: count) else { return false }
            }
            return false
        }

        private mutating func reset(_ count: Int) {
            if current.count < count + 1 {
                current = [Bool](repeating: false, count: count + 1)
                next = current
            }
            for index in 0...count { current[index] = false }
            current[0] = true
        }

        /// Moves the set of reachable positions over one token; returns whether any remain.
        private mutating func step(_ token: Token, _ path: [UInt32], count: Int) -> Bool {
            var any = false
            switch token {
            case .literal, .anyCharacter, .characterClass:
                next[0] = false
                for position in 0..<count {
                    let reached = current[position] && Self.accepts(token, path[position])
                    next[position + 1] = reached
                    any = any || reached
                }
            case .star:
                var active = false
                for position in 0...count {
                    if position > 0 && path[position - 1] == slash { active = false }
                    if current[position] { active = true }
                    next[position] = active
                    any = any || active
                }
            case .directories:
                var seen = false
                for position in 0...count {
                    let reached = current[position] || (seen && position > 0 && path[position - 1] == slash)
                    if current[position] { seen = true }
                    next[position] = reached
                    any = any || reached
                }
            case .anything:
                var seen = false
                for position in 0...count {
                    if current[position] { seen = true }
                    next[position] = seen
                    any = any || seen
                }
            }
            swap(&current, &next)
            return any
        }

        private static func accepts(_ token: Token, _ scalar: UInt32) -> Bool {
            switch token {
            case .literal(let expected): return scalar == expected
            case .anyCharacter: return scalar != slash
            case .characterClass(let negated, let ranges):
                return ranges.contains { $0.contains(scalar) } != negated
            default: return false
            }
        }
    }
}

private let slash = UInt32(UInt8(ascii: "/"))
private let star = UInt32(UInt8(ascii: "*"))
private let question = UInt32(UInt8(ascii: "?"))
private let backslash = UInt32(UInt8(ascii: "\\"))
private let openBracket = UInt32(UInt8(ascii: "["))
private let closeBracket = UInt32(UInt8(ascii: "]"))
private let hyphen = UInt32(UInt8(ascii: "-"))
private let caret = UInt32(UInt8(ascii: "^"))
