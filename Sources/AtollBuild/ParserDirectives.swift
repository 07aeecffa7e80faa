import AtollCore

/// The parser directives at the top of a Dockerfile (`# syntax=…`, `# escape=…`, `# check=…`):
/// comments of the form `# key=value` before any instruction, other comment or blank line. Keys are
/// case-insensitive; an unknown key makes the line a plain comment and ends the directives; a key
/// given twice is an error.
struct ParserDirectives: Equatable {
    var syntax: String?
    var escape: Unicode.Scalar = "\\"
    /// `# check=…` (BuildKit's lint settings): recorded, not used.
    var check: String?

    /// Reads the directives from the first lines (newlines removed).
    static func read(_ lines: [String], name: String) throws -> ParserDirectives {
        var directives = ParserDirectives()
        var seen: Set<String> = []
        for (index, line) in lines.enumerated() {
            guard let (key, value) = directive(line), ["syntax", "escape", "check"].contains(key) else { break }
            let number = index + 1
            guard seen.insert(key).inserted else {
                throw AtollError.invalidArgument("\(name):\(number): the \(key) directive is given more than once")
            }
            switch key {
            case "syntax":
                directives.syntax = value
            case "escape":
                guard value == "\\" || value == "`", let scalar = value.unicodeScalars.first else {
                    throw AtollError.invalidArgument(
                        "\(name):\(number): invalid escape directive \"\(value)\": use a backslash or a backtick")
                }
                directives.escape = scalar
            default:
                directives.check = value
            }
        }
        return directives
    }

    /// `# key = value` (BuildKit's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`), key lower-cased.
    private static func directive(_ line: String) -> (String, String)? {
        var rest = line.trimmingLeadingBlanks.unicodeScalars[...]
        guard rest.first == "#" else { return nil }
        rest = rest.dropFirst().drop(while: \.isBlank)
        guard let first = rest.first, first.isASCII, first.properties.isAlphabetic else { return nil }
        let key = rest.prefix { $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil) }
        rest = rest.dropFirst(key.count).drop(while: \.isBlank)
        guard rest.first == "=" else { return nil }
        let value = String(String.UnicodeScalarView(rest.dropFirst())).trimmingBlanks
        guard !value.isEmpty else { return nil }
        return (String(String.UnicodeScalarView(key)).lowercased(), value)
    }
}
