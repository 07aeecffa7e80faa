import AtollCore

/// The `--name=value` and bare `--name` flags at the start of an instruction's arguments, as
/// BuildKit's `extractBuilderFlags` reads them: every leading word that starts with `--` is a flag
/// (quotes and escapes removed), `--` alone ends the flags, and the rest are the arguments.
struct InstructionFlags: Equatable {
    /// The flag words, without their quotes.
    var words: [String]
    /// The arguments after the flags, trimmed.
    var arguments: String
    /// Whether a `--` word ended the flags.
    var endedBySeparator: Bool

    init(_ text: String, escape: Unicode.Scalar) {
        let chars = Array(text.unicodeScalars)
        var words: [String] = []
        var separator = false
        var word = String.UnicodeScalarView()
        var inWord = false
        var quote: Unicode.Scalar?
        var i = 0
        func finishWord() {
            let flag = String(word)
            if flag == "--" { separator = true } else { words.append(flag) }
            word = String.UnicodeScalarView()
            inWord = false
        }
        while i < chars.count {
            let c = chars[i]
            if !inWord {
                if c.isBlank {
                    i += 1
                    continue
                }
                guard c == "-", i + 1 < chars.count, chars[i + 1] == "-" else { break }
                inWord = true
            }
            if let q = quote {
                if c == q {
                    quote = nil
                } else if c == escape && i + 1 < chars.count {
                    i += 1
                    word.append(chars[i])
                } else if c != escape {
                    word.append(c)
                }
                i += 1
                continue
            }
            if c.isBlank {
                finishWord()
                i += 1
                if separator { break }
                continue
            }
            if c == "\"" || c == "'" {
                quote = c
            } else if c == escape {
                if i + 1 < chars.count {
                    i += 1
                    word.append(chars[i])
                }
            } else {
                word.append(c)
            }
            i += 1
        }
        if inWord { finishWord() }
        self.words = words
        self.endedBySeparator = separator
        self.arguments = String(String.UnicodeScalarView(chars[min(i, chars.count)...])).trimmingBlanks
    }

    /// What an instruction accepts.
    enum Kind {
        /// `--name=value`, the value not empty.
        case string
        /// `--name`, `--name=true` or `--name=false`.
        case bool
    }

    /// The flags' values by name (`true`/`false` for booleans), checked against what `instruction`
    /// accepts. `unsupported` names real Docker flags Atoll does not implement.
    func values(
        for instruction: String, accepted: [String: Kind], unsupported: Set<String> = []
    ) throws -> [String: String] {
        var values: [String: String] = [:]
        for word in words {
            let body = word.dropFirst(2)
            let name = String(body.prefix { $0 != "=" })
            let value: String? = body.count > name.count ? String(body.dropFirst(name.count + 1)) : nil
            if unsupported.contains(name) {
                throw AtollError.invalidArgument("\(instruction) --\(name) is not supported")
            }
            guard let kind = accepted[name] else {
                throw AtollError.invalidArgument("unknown flag \"--\(name)\" for \(instruction)")
            }
            guard values[name] == nil else {
                throw AtollError.invalidArgument("flag \"--\(name)\" is given more than once")
            }
            switch kind {
            case .string:
                guard let value, !value.isEmpty else {
                    throw AtollError.invalidArgument("flag \"--\(name)\" needs a value (--\(name)=value)")
                }
                values[name] = value
            case .bool:
                switch value?.lowercased() {
                case nil, "true": values[name] = "true"
                case "false": values[name] = "false"
                default:
                    throw AtollError.invalidArgument(
                        "flag \"--\(name)\" takes true or false, not \"\(value ?? "")\"")
                }
            }
        }
        return values
    }
}
