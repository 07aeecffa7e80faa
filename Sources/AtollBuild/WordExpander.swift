import AtollCore

/// Expands Dockerfile words at build time with Docker's shell-lexer rules: quote removal (nothing is
/// special between single quotes; between double quotes only `$` and the escape character are),
/// escapes with the Dockerfile's escape character, and `$VAR`, `${VAR}`, `${VAR:-word}`,
/// `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, `${VAR:?message}` and `${VAR?message}`, where
/// `word` is itself expanded. An undefined variable expands to nothing; a `$` not followed by a
/// name stays as it is.
public struct WordExpander: Sendable {
    public var environment: [String: String]
    /// The Dockerfile's escape character: a backslash or a backtick.
    public var escape: Character
    /// False to take `$` literally (quote and escape removal only), as in heredoc delimiters.
    var expandsVariables = true

    public init(environment: [String: String], escape: Character = "\\") {
        self.environment = environment
        self.escape = escape
    }

    /// One word, expanded and with its quotes removed.
    public func expand(_ word: String) throws -> String {
        var lexer = WordLexer(
            chars: Array(word.unicodeScalars), escape: escape.unicodeScalars.first ?? "\\",
            environment: environment, expandsVariables: expandsVariables, word: word)
        return try lexer.text(until: nil)
    }

    /// The words of an argument string, split on blanks outside quotes, then each expanded (the
    /// shell form of COPY, ADD, EXPOSE and VOLUME). A word that expands to nothing stays, empty.
    public func words(_ text: String) throws -> [String] {
        try WordSplitter.split(text, escape: escape.unicodeScalars.first ?? "\\").map(expand)
    }
}

/// The recursive-descent lexer behind `WordExpander` (a port of BuildKit's `shell.Lex`).
private struct WordLexer {
    let chars: [Unicode.Scalar]
    let escape: Unicode.Scalar
    let environment: [String: String]
    let expandsVariables: Bool
    /// The whole word, for error messages.
    let word: String
    var i = 0

    init(
        chars: [Unicode.Scalar], escape: Unicode.Scalar, environment: [String: String], expandsVariables: Bool,
        word: String
    ) {
        self.chars = chars
        self.escape = escape
        self.environment = environment
        self.expandsVariables = expandsVariables
        self.word = word
    }

    private func fail(_ why: String) -> AtollError {
        let quoted = word.unicodeScalars.map { $0 == "\"" ? "\\\"" : String($0) }.joined()
        return AtollError.invalidArgument("invalid word \"\(quoted)\": \(why)")
    }

    /// Text up to `stop` (consumed; nil for the end of the word).
    mutating func text(until stop: Unicode.Scalar?) throws -> String {
        var out = String.UnicodeScalarView()
        while i < chars.count {
            let c = chars[i]
            if let stop, c == stop {
                i += 1
                return String(out)
            }
            switch c {
            case "$" where expandsVariables:
                out.append(contentsOf: try dollar().unicodeScalars)
            case "'":
                out.append(contentsOf: try singleQuoted().unicodeScalars)
            case "\"":
                out.append(contentsOf: try doubleQuoted().unicodeScalars)
            case escape:
                // The escape protects the next character; a trailing one is dropped.
                i += 1
                if i < chars.count {
                    out.append(chars[i])
                    i += 1
                }
            default:
                out.append(c)
                i += 1
            }
        }
        if stop != nil { throw fail("missing '}'") }
        return String(out)
    }

    private mutating func singleQuoted() throws -> String {
        i += 1
        guard let end = chars[i...].firstIndex(of: "'") else { throw fail("missing closing single quote") }
        let out = String(String.UnicodeScalarView(chars[i..<end]))
        i = end + 1
        return out
    }

    private mutating func doubleQuoted() throws -> String {
        i += 1
        var out = String.UnicodeScalarView()
        while i < chars.count {
            let c = chars[i]
            if c == "\"" {
                i += 1
                return String(out)
            }
            if c == "$" && expandsVariables {
                out.append(contentsOf: try dollar().unicodeScalars)
                continue
            }
            i += 1
            if c == escape {
                // Only `"`, `$` and the escape itself can be escaped; other escapes stay.
                guard i < chars.count else { break }
                if chars[i] == "\"" || chars[i] == "$" || chars[i] == escape {
                    out.append(chars[i])
                    i += 1
                    continue
                }
            }
            out.append(c)
        }
        throw fail("missing closing double quote")
    }

    /// How deep `${…}` substitutions nest so far: bounded, so that a hostile word cannot exhaust
    /// the stack of the daemon that expands it.
    var depth = 0
    static let maximumDepth = 64

    /// Expands the `$` at `chars[i]`.
    private mutating func dollar() throws -> String {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else {
            throw fail("substitutions nest more than \(Self.maximumDepth) deep")
        }
        i += 1
        guard i < chars.count, chars[i] == "{" else {
            let name = self.name()
            return name.isEmpty ? "$" : environment[name] ?? ""
        }
        i += 1
        guard i < chars.count else { throw fail("missing '}'") }
        guard !["{", "}", ":"].contains(chars[i]) else { throw fail("bad substitution") }
        let name = self.name()
        guard !name.isEmpty else { throw fail("bad substitution") }
        guard i < chars.count else { throw fail("missing '}'") }
        let op = chars[i]
        i += 1
        let value = environment[name]
        switch op {
        case "}":
            return value ?? ""
        case ":":
            guard i < chars.count else { throw fail("missing '}'") }
            let modifier = chars[i]
            i += 1
            let word = try text(until: "}")
            let set = !(value ?? "").isEmpty
            switch modifier {
            case "-": return set ? value ?? "" : word
            case "+": return set ? word : ""
            case "?":
                guard set else { throw fail("\(name): \(word.isEmpty ? "is not allowed to be empty" : word)") }
                return value ?? ""
            default: throw fail("unsupported modifier \"\(modifier)\" in substitution")
            }
        case "-", "+", "?":
            let word = try text(until: "}")
            switch op {
            case "-": return value ?? word
            case "+": return value == nil ? "" : word
            default:
                guard let value else { throw fail("\(name): \(word.isEmpty ? "is not allowed to be unset" : word)") }
                return value
            }
        default:
            throw fail("unsupported modifier \"\(op)\" in substitution")
        }
    }

    /// A variable name at `chars[i]`: letters, digits and `_`; or all the digits of a positional
    /// parameter; or one special parameter (`$@`, `$#`, …), which are never set in a Dockerfile.
    private mutating func name() -> String {
        guard i < chars.count else { return "" }
        let first = chars[i]
        if first.isDigit {
            let start = i
            while i < chars.count, chars[i].isDigit { i += 1 }
            return String(String.UnicodeScalarView(chars[start..<i]))
        }
        if "@*#?-$!".unicodeScalars.contains(first) {
            i += 1
            return String(first)
        }
        let start = i
        while i < chars.count, chars[i].isDigit || chars[i].properties.isAlphabetic || chars[i] == "_" { i += 1 }
        return String(String.UnicodeScalarView(chars[start..<i]))
    }
}

extension Unicode.Scalar {
    fileprivate var isDigit: Bool { properties.generalCategory == .decimalNumber }
}
