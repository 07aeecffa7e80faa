import ArgumentParser
import AtollAPI
import Foundation
import Glibc

struct ImagePruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove unused images.")

    @Flag(name: .shortAndLong, help: "Remove all images no container uses, not just dangling ones.")
    var all = false

    @Flag(name: .shortAndLong, help: "Do not ask for confirmation.")
    var force = false

    @Option(help: "Filter (label=K[=V], before=IMAGE, since=IMAGE).")
    var filter: [String] = []

    func run() async throws {
        if !force && isatty(STDIN_FILENO) == 1 {
            let what = all ? "all images without at least one container associated to them" : "all dangling images"
            Output.write(
                Data("WARNING! This will remove \(what).\nAre you sure you want to continue? [y/N] ".utf8),
                to: .standardError)
            guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else { return }
        }
        var request = Atoll_Engine_V1_PruneImagesRequest()
        request.all = all
        request.filters = filter
        let response = try await GlobalOptions.withEngine { [request] in try await $0.images.prune(request) }
        if !response.untagged.isEmpty || !response.deleted.isEmpty {
            Output.print("Deleted Images:")
            for name in response.untagged { Output.print("untagged: \(name)") }
            for id in response.deleted { Output.print("deleted: \(id)") }
            Output.print("")
        }
        Output.print("Total reclaimed space: \(Output.size(response.spaceReclaimed))")
    }
}
