import AtollCore

/// A heredoc redirection in an instruction's line (BuildKit's `^(\d*)<<(-?)([^<]*)$` words):
/// `<<EOF`, `<<-EOF` (leading tabs stripped from the body and the terminator), `<<"EOF"` or
/// `<<'EOF'` (any quote in the delimiter: the body is not expanded), optionally after a file
/// descriptor (`3<<EOF`).
struct HeredocMarker: Equatable {
    /// The delimiter, quotes and escapes removed.
    var name: String
    var stripsTabs: Bool
    var expands: Bool

    /// The heredoc a word of an instruction's line opens, if it is one.
    init?(word: String, escape: Unicode.Scalar) throws {
        let scalars = word.unicodeScalars
        var rest = scalars.drop { $0.isASCII && $0.properties.numericType == .decimal }[...]
        guard rest.starts(with: "<<".unicodeScalars) else { return nil }
        rest = rest.dropFirst(2)
        stripsTabs = rest.first == "-"
        if stripsTabs { rest = rest.dropFirst() }
        guard !rest.isEmpty, !rest.contains("<") else { return nil }
        let raw = String(String.UnicodeScalarView(rest))
        var unquote = WordExpander(environment: [:], escape: Character(escape))
        unquote.expandsVariables = false
        name = try unquote.expand(raw)
        guard !name.isEmpty else { return nil }
        expands = !raw.contains("\"") && !raw.contains("'")
    }

    /// The heredocs an instruction's line opens, in order.
    static func all(in line: String, escape: Unicode.Scalar) throws -> [HeredocMarker] {
        guard line.contains("<<") else { return [] }
        return try WordSplitter.split(line, escape: escape).compactMap { try HeredocMarker(word: $0, escape: escape) }
    }

    /// Whether a word of an instruction's arguments is a heredoc (`<<EOF` as a COPY source).
    static func isMarker(_ word: String, escape: Unicode.Scalar) -> Bool {
        (try? HeredocMarker(word: word, escape: escape)) != nil
    }
}
