/// Docker's `parseWords`: splits a Dockerfile argument string on blanks outside quotes, keeping the
/// quotes and escapes in the words (they are removed later, when a word is expanded). An escape
/// character outside single quotes protects the next character, a blank or a quote included; a
/// trailing escape is dropped; an unterminated quote runs to the end of the text.
enum WordSplitter {
    static func split(_ text: String, escape: Unicode.Scalar) -> [String] {
        let chars = Array(text.unicodeScalars)
        var words: [String] = []
        var word = String.UnicodeScalarView()
        var inWord = false
        var quote: Unicode.Scalar?
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if let q = quote {
                if c == q {
                    quote = nil
                } else if c == escape && q != "'" {
                    // `"a\"b"`: the escape keeps the quote inside; both stay in the word.
                    guard i + 1 < chars.count else { break }
                    word.append(c)
                    i += 1
                    word.append(chars[i])
                    i += 1
                    continue
                }
                word.append(c)
                i += 1
                continue
            }
            if c.isBlank {
                if inWord { words.append(String(word)) }
                word = String.UnicodeScalarView()
                inWord = false
                i += 1
                continue
            }
            inWord = true
            if c == escape {
                guard i + 1 < chars.count else { break }
                word.append(c)
                i += 1
                word.append(chars[i])
                i += 1
                continue
            }
            if c == "\"" || c == "'" { quote = c }
            word.append(c)
            i += 1
        }
        if inWord { words.append(String(word)) }
        return words
    }
}

extension Unicode.Scalar {
    /// White space as Go's `unicode.IsSpace` sees it (what Docker splits words on).
    var isBlank: Bool { properties.isWhitespace }
}

extension String {
    /// The string without leading and trailing white space.
    var trimmingBlanks: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.isBlank }),
            let last = scalars.lastIndex(where: { !$0.isBlank })
        else { return "" }
        return String(scalars[first...last])
    }

    /// The string without leading white space.
    var trimmingLeadingBlanks: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.isBlank }) else { return "" }
        return String(scalars[first...])
    }
}
