import AtollCore

extension Dockerfile {
    /// Parses a Dockerfile with BuildKit's rules: parser directives, comments, line continuations,
    /// heredocs, and every instruction's forms and flags. Words stay as written for the builder to
    /// expand; what does not depend on build-time variables is checked now. Errors are
    /// `AtollError.invalidArgument` naming the file and line: `Dockerfile:12: unknown instruction
    /// "COPPY" (did you mean COPY?)`.
    /// - Parameters:
    ///   - text: The Dockerfile's contents.
    ///   - name: The file name errors show.
    public static func parse(_ text: String, name: String = "Dockerfile") throws -> Dockerfile {
        let physical = LogicalLines.physicalLines(text)
        let directives = try ParserDirectives.read(physical, name: name)
        let lines = try LogicalLines.read(physical, escape: directives.escape, name: name)
        guard !lines.isEmpty else { throw AtollError.invalidArgument("\(name): the Dockerfile has no instructions") }

        var dockerfile = Dockerfile(syntax: directives.syntax, escape: Character(directives.escape))
        let parser = InstructionParser(escape: directives.escape)
        var stageLines: [String: Int] = [:]
        for line in lines {
            func fail(_ message: String) -> AtollError {
                AtollError.invalidArgument("\(name):\(line.line): \(message)")
            }
            let parsed: ParsedLine
            do {
                parsed = try parser.parse(line)
            } catch let error as AtollError {
                throw fail(error.message)
            }
            switch parsed {
            case .from(let from):
                if let stage = from.name {
                    if let first = stageLines[stage] {
                        throw fail("duplicate stage name \"\(stage)\" (first used on line \(first))")
                    }
                    stageLines[stage] = line.line
                }
                dockerfile.stages.append(
                    Stage(
                        index: dockerfile.stages.count, name: from.name, base: from.base, platform: from.platform,
                        line: line.line))
            case .instruction(let instruction):
                if dockerfile.stages.isEmpty {
                    guard case .arg(let declarations) = instruction.command else {
                        let keyword = LogicalLines.splitKeyword(line.text).keyword.uppercased()
                        throw fail("no FROM before \(keyword): only ARG may come before the first FROM")
                    }
                    dockerfile.metaArgs += declarations
                } else {
                    dockerfile.stages[dockerfile.stages.count - 1].instructions.append(instruction)
                }
            }
        }
        guard !dockerfile.stages.isEmpty else {
            throw AtollError.invalidArgument("\(name): the Dockerfile has no FROM")
        }
        return dockerfile
    }
}
