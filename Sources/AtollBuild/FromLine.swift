import AtollCore

/// `FROM [--platform=…] image [AS name]`: what a stage starts from.
struct FromLine: Equatable {
    /// The image as written.
    var base: String
    /// The `AS` name, lower-cased.
    var name: String?
    var platform: String?

    /// Parses the arguments after `FROM`.
    init(_ flags: InstructionFlags, escape: Unicode.Scalar) throws {
        let values = try flags.values(for: "FROM", accepted: ["platform": .string])
        let words = WordSplitter.split(flags.arguments, escape: escape)
        switch words.count {
        case 0:
            throw AtollError.invalidArgument("FROM requires at least one argument")
        case 1:
            name = nil
        case 3 where words[1].lowercased() == "as":
            let stage = words[2].lowercased()
            guard Self.isValidStageName(stage) else {
                throw AtollError.invalidArgument(
                    "invalid stage name \"\(words[2])\": it must start with a letter and contain only letters, "
                        + "digits, \"-\", \"_\" and \".\"")
            }
            name = stage
        default:
            throw AtollError.invalidArgument("FROM takes one or three arguments: FROM image [AS name]")
        }
        base = words[0]
        platform = values["platform"]
    }

    /// BuildKit's `^[a-z][a-z0-9-_.]*$`.
    static func isValidStageName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)
        }
    }
}
