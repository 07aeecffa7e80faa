import ArgumentParser
import AtollAPI
import Foundation

struct RemoveImageOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Remove even if containers use it, or it has several names.")
    var force = false

    @Argument(help: "Images (names, IDs or ID prefixes).")
    var images: [String]
}

struct RmiCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove images.")
    @OptionGroup var options: RemoveImageOptions
    func run() async throws { try await Self.remove(options) }

    /// Removes each image in turn; reports every failure and exits 1 if any failed, as Docker does.
    static func remove(_ options: RemoveImageOptions) async throws {
        guard !options.images.isEmpty else { throw ValidationError("rmi needs at least one image") }
        var failed = false
        for image in options.images {
            var request = Atoll_Engine_V1_RemoveImageRequest()
            request.reference = image
            request.force = options.force
            do {
                let response = try await GlobalOptions.withEngine { [request] in try await $0.images.remove(request) }
                for name in response.untagged { Output.print("Untagged: \(name)") }
                for id in response.deleted { Output.print("Deleted: \(id)") }
            } catch {
                failed = true
                FileHandle.standardErrorLine("Error: \(Atoll.describe(error))")
            }
        }
        if failed { throw ExitCode.failure }
    }
}

struct ImageRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove images.", aliases: ["remove"])
    @OptionGroup var options: RemoveImageOptions
    func run() async throws { try await RmiCommand.remove(options) }
}
