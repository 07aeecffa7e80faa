import ArgumentParser

struct ImageListOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Show all images (default hides intermediate images).")
    var all = false

    @Flag(name: .shortAndLong, help: "Only show image IDs.")
    var quiet = false

    @Flag(help: "Show digests.")
    var digests = false

    @Flag(name: .customLong("no-trunc"), help: "Do not truncate IDs.")
    var noTrunc = false

    @Option(
        name: .shortAndLong, help: "Filter (dangling=true, reference=PATTERN, label=K[=V], before=IMAGE, since=IMAGE).")
    var filter: [String] = []

    @Option(help: "Format: table, json or a template such as '{{.Repository}}:{{.Tag}}'.")
    var format: String?

    @Argument(help: "Only images of this repository (a pattern).")
    var repository: String?
}

struct ImagesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List images.")
    @OptionGroup var options: ImageListOptions
    func run() async throws { try await ImageListing.run(options: options) }
}

struct ImageListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List images.", aliases: ["list"])
    @OptionGroup var options: ImageListOptions
    func run() async throws { try await ImageListing.run(options: options) }
}

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Manage images.",
        subcommands: [
            ImageListCommand.self, ImageInspectCommand.self, TagCommand.self, ImageRemoveCommand.self,
            ImagePruneCommand.self, ImportCommand.self, LoadCommand.self, SaveCommand.self, PullCommand.self,
            PushCommand.self, HistoryCommand.self,
        ])
}
