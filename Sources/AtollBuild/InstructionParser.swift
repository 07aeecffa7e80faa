import AtollCore
import AtollOCI

/// What one logical line of a Dockerfile declares: a new stage or an instruction in one.
enum ParsedLine: Equatable {
    case from(FromLine)
    case instruction(Instruction)
}

/// Parses one logical line into its instruction, checking everything that does not depend on
/// build-time variables. Errors carry no location; `Dockerfile.parse` adds the file and line.
struct InstructionParser {
    let escape: Unicode.Scalar

    func parse(_ line: LogicalLine) throws -> ParsedLine {
        let (word, rest) = LogicalLines.splitKeyword(line.text)
        let keyword = try InstructionKeyword(parsing: word)
        let flags = InstructionFlags(rest, escape: escape)
        if keyword == .from { return .from(try FromLine(flags, escape: escape)) }
        let command = try self.command(keyword, word: word, flags: flags, text: line.text, heredocs: line.heredocs)
        return .instruction(Instruction(line: line.line, text: line.text, command: command))
    }

    private func command(
        _ keyword: InstructionKeyword, word: String, flags: InstructionFlags, text: String, heredocs: [Heredoc]
    ) throws -> Command {
        let name = keyword.rawValue
        switch keyword {
        case .run:
            return .run(try run(flags, heredocs: heredocs))
        case .copy:
            return .copy(try CopyCommand(flags, isAdd: false, heredocs: heredocs, escape: escape))
        case .add:
            return .add(try CopyCommand(flags, isAdd: true, heredocs: heredocs, escape: escape))
        case .arg:
            _ = try flags.values(for: name, accepted: [:])
            return .arg(try arguments(requiredBy: name, flags).map(argDeclaration))
        case .shell:
            _ = try flags.values(for: name, accepted: [:])
            let args = try arguments(requiredBy: name, flags.arguments)
            guard let argv = JSONStringArray.parse(args) else {
                throw AtollError.invalidArgument(
                    "SHELL requires a JSON array of strings: SHELL [\"executable\", \"parameters\"]")
            }
            guard !argv.isEmpty else { throw AtollError.invalidArgument("SHELL requires at least one argument") }
            return .shell(argv)
        case .maintainer:
            _ = try flags.values(for: name, accepted: [:])
            return .maintainer(try arguments(requiredBy: name, flags.arguments))
        case .from:
            throw AtollError.invalidArgument("FROM cannot be used here")
        case .cmd, .entrypoint, .env, .expose, .healthcheck, .label, .onbuild, .stopsignal, .user, .volume, .workdir:
            return .config(try configChange(keyword, word: word, flags: flags, text: text, heredocs: heredocs))
        }
    }

    private func run(_ flags: InstructionFlags, heredocs: [Heredoc]) throws -> RunCommand {
        let values = try flags.values(for: "RUN", accepted: ["network": .string], unsupported: ["mount", "security"])
        if let network = values["network"], !["default", "none", "host"].contains(network) {
            throw AtollError.invalidArgument("invalid RUN --network \"\(network)\": use default, none or host")
        }
        let args = try arguments(requiredBy: "RUN", flags.arguments)
        if let argv = JSONStringArray.parse(args) {
            guard !argv.isEmpty else { throw AtollError.invalidArgument("RUN requires at least one argument") }
            return RunCommand(form: .exec(argv), network: values["network"])
        }
        return RunCommand(form: .shell(args), heredocs: heredocs, network: values["network"])
    }

    /// `NAME` or `NAME=default`, the default as written.
    private func argDeclaration(_ word: String) throws -> ArgDeclaration {
        let scalars = word.unicodeScalars
        guard let equals = scalars.firstIndex(of: "=") else { return ArgDeclaration(name: word) }
        let name = String(scalars[..<equals])
        guard !name.isEmpty else { throw AtollError.invalidArgument("ARG \"\(word)\" has no name") }
        return ArgDeclaration(name: name, defaultValue: String(scalars[scalars.index(after: equals)...]))
    }

    /// An instruction that edits the image config, as text for `ConfigChange.parse`, checked with
    /// `ConfigChange` now unless the check depends on build-time variables.
    private func configChange(
        _ keyword: InstructionKeyword, word: String, flags: InstructionFlags, text: String, heredocs: [Heredoc]
    ) throws -> String {
        let name = keyword.rawValue
        // HEALTHCHECK's flags are its own; ConfigChange reads them.
        if keyword != .healthcheck { _ = try flags.values(for: name, accepted: [:]) }
        let args = try arguments(requiredBy: name, flags.arguments)
        let change = flags.endedBySeparator ? "\(word) \(args)" : text
        var checkable = !change.contains("$") && (escape == "\\" || !(change.contains("\\") || change.contains("`")))
        if keyword == .onbuild {
            try checkTrigger(args, heredocs: heredocs)
            checkable = true
        } else if [.cmd, .entrypoint, .healthcheck].contains(keyword) {
            // Their arguments are not expanded.
            checkable = true
        }
        if checkable {
            do {
                _ = try ConfigChange.parse(change, environment: [])
            } catch let error as AtollError {
                let prefix = "invalid change \"\(change)\": "
                let why =
                    error.message.hasPrefix(prefix) ? String(error.message.dropFirst(prefix.count)) : error.message
                throw AtollError.invalidArgument(why)
            }
        }
        return change
    }

    /// Checks an ONBUILD trigger as an instruction of its own.
    private func checkTrigger(_ trigger: String, heredocs: [Heredoc]) throws {
        guard heredocs.isEmpty else { throw AtollError.invalidArgument("ONBUILD triggers cannot use heredocs") }
        let (word, rest) = LogicalLines.splitKeyword(trigger)
        let keyword = try InstructionKeyword(parsing: word)
        switch keyword {
        case .onbuild:
            throw AtollError.invalidArgument("chaining ONBUILD via ONBUILD ONBUILD is not allowed")
        case .from, .maintainer:
            throw AtollError.invalidArgument("\(keyword.rawValue) is not allowed as an ONBUILD trigger")
        default:
            let flags = InstructionFlags(rest, escape: escape)
            _ = try command(keyword, word: word, flags: flags, text: trigger, heredocs: [])
        }
    }

    private func arguments(requiredBy instruction: String, _ args: String) throws -> String {
        guard !args.isEmpty else { throw AtollError.invalidArgument("\(instruction) requires at least one argument") }
        return args
    }

    private func arguments(requiredBy instruction: String, _ flags: InstructionFlags) throws -> [String] {
        let words = WordSplitter.split(try arguments(requiredBy: instruction, flags.arguments), escape: escape)
        guard !words.isEmpty else { throw AtollError.invalidArgument("\(instruction) requires at least one argument") }
        return words
    }
}
