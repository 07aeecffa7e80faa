import AtollCore

/// One instruction's text as the parser sees it, with the heredoc bodies that follow it.
struct LogicalLine: Equatable {
    /// The physical line the instruction starts on, from 1.
    var line: Int
    /// The instruction, continuation lines joined and trimmed.
    var text: String
    var heredocs: [Heredoc] = []
}

/// Turns a Dockerfile's text into its instructions' logical lines, as BuildKit's parser does:
/// CRLF or LF line ends (and a leading byte-order mark) accepted; blank lines and comment lines
/// (`#` first after blanks) dropped, also between continuation lines; a line ending with the
/// escape character (blanks after it allowed) continued by the next, the two concatenated without
/// the escape; and for RUN, COPY and ADD (also as ONBUILD triggers) the bodies of the heredocs
/// the line opens read from the lines after it.
enum LogicalLines {
    /// The logical lines of a Dockerfile's physical lines (`physicalLines(_:)`).
    static func read(_ lines: [String], escape: Unicode.Scalar, name: String) throws -> [LogicalLine] {
        var result: [LogicalLine] = []
        var next = 0
        while next < lines.count {
            let start = next + 1
            let first = lines[next].trimmingLeadingBlanks
            next += 1
            guard first.unicodeScalars.first != "#" else { continue }
            var (joined, complete) = continuation(first, escape: escape)
            guard !complete || !joined.isEmpty else { continue }
            while !complete && next < lines.count {
                let line = lines[next]
                next += 1
                let trimmed = line.trimmingLeadingBlanks
                if trimmed.isEmpty || trimmed.unicodeScalars.first == "#" { continue }
                let (part, ends) = continuation(line, escape: escape)
                joined += part
                complete = ends
            }
            let instruction = joined.trimmingBlanks
            guard !instruction.isEmpty else { continue }
            var logical = LogicalLine(line: start, text: instruction)
            if canOpenHeredocs(instruction, escape: escape) {
                let markers: [HeredocMarker]
                do {
                    markers = try HeredocMarker.all(in: instruction, escape: escape)
                } catch let error as AtollError {
                    throw AtollError.invalidArgument("\(name):\(start): \(error.message)")
                }
                for marker in markers {
                    guard let body = heredocBody(marker, lines: lines, from: &next) else {
                        throw AtollError.invalidArgument(
                            "\(name):\(start): unterminated heredoc \"\(marker.name)\" (no line \"\(marker.name)\" ends it)"
                        )
                    }
                    logical.heredocs.append(Heredoc(name: marker.name, content: body, expands: marker.expands))
                }
            }
            result.append(logical)
        }
        return result
    }

    /// The lines of a text, without their LF or CRLF ends or a leading byte-order mark.
    static func physicalLines(_ text: String) -> [String] {
        var scalars = text.unicodeScalars[...]
        if scalars.first == "\u{FEFF}" { scalars = scalars.dropFirst() }
        return scalars.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            String(String.UnicodeScalarView(line.last == "\r" ? line.dropLast() : line))
        }
    }

    /// The line without a trailing escape character (and blanks after it), and whether the
    /// instruction ends on this line (no escape there).
    private static func continuation(_ line: String, escape: Unicode.Scalar) -> (String, Bool) {
        let scalars = line.unicodeScalars
        var end = scalars.endIndex
        while end > scalars.startIndex, [" ", "\t"].contains(scalars[scalars.index(before: end)]) {
            end = scalars.index(before: end)
        }
        guard end > scalars.startIndex, scalars[scalars.index(before: end)] == escape else { return (line, true) }
        return (String(scalars[..<scalars.index(before: end)]), false)
    }

    /// Whether an instruction's line may open heredocs: RUN, COPY and ADD in shell form, directly
    /// or as an ONBUILD trigger.
    private static func canOpenHeredocs(_ text: String, escape: Unicode.Scalar) -> Bool {
        guard text.contains("<<") else { return false }
        var (keyword, rest) = splitKeyword(text)
        if keyword.uppercased() == "ONBUILD" { (keyword, rest) = splitKeyword(rest) }
        guard ["RUN", "COPY", "ADD"].contains(keyword.uppercased()) else { return false }
        return JSONStringArray.parse(InstructionFlags(rest, escape: escape).arguments) == nil
    }

    /// The keyword (up to the first blank) and the rest, trimmed.
    static func splitKeyword(_ text: String) -> (keyword: String, rest: String) {
        let scalars = text.trimmingBlanks.unicodeScalars
        let end = scalars.firstIndex(where: \.isBlank) ?? scalars.endIndex
        return (String(scalars[..<end]), String(scalars[end...]).trimmingBlanks)
    }

    /// The body of a heredoc: the lines from `next` to its terminator, each ending in "\n" (tabs
    /// stripped for `<<-`); nil when no line ends it. Moves `next` past the terminator.
    private static func heredocBody(_ marker: HeredocMarker, lines: [String], from next: inout Int) -> String? {
        var body = ""
        while next < lines.count {
            let line = lines[next]
            next += 1
            let content = marker.stripsTabs ? String(line.unicodeScalars.drop { $0 == "\t" }) : line
            if content == marker.name { return body }
            body += content + "\n"
        }
        return nil
    }
}
