import AtollCore

extension CopyCommand {
    /// Parses the arguments of `COPY` (`isAdd` false) or `ADD`: flags, then sources and a
    /// destination, in shell form or as a JSON array. A heredoc source (`<<EOF`) is recorded by its
    /// name, its body taken from `heredocs`.
    init(_ flags: InstructionFlags, isAdd: Bool, heredocs: [Heredoc], escape: Unicode.Scalar) throws {
        let instruction = isAdd ? "ADD" : "COPY"
        var accepted: [String: InstructionFlags.Kind] = ["chown": .string, "chmod": .string, "link": .bool]
        if !isAdd { accepted["from"] = .string }
        let unsupported: Set<String> =
            isAdd ? ["checksum", "keep-git-dir", "exclude", "unpack"] : ["parents", "exclude"]
        let values = try flags.values(for: instruction, accepted: accepted, unsupported: unsupported)

        let json = JSONStringArray.parse(flags.arguments)
        let words = json ?? WordSplitter.split(flags.arguments, escape: escape)
        guard words.count >= 2, let destination = words.last else {
            throw AtollError.invalidArgument(
                "\(instruction) requires at least two arguments: one or more sources and a destination")
        }
        func heredoc(_ word: String) -> HeredocMarker? {
            json == nil ? (try? HeredocMarker(word: word, escape: escape)) : nil
        }
        guard heredoc(destination) == nil else {
            throw AtollError.invalidArgument("\(instruction) cannot take a heredoc as its destination")
        }
        self.init(
            sources: words.dropLast().map { heredoc($0)?.name ?? $0 }, destination: destination,
            from: values["from"], chown: values["chown"], chmod: values["chmod"], link: values["link"] == "true",
            heredocs: heredocs)
    }
}
