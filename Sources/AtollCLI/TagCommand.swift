import ArgumentParser
import AtollAPI

struct TagCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Give an image another name.")

    @Argument(help: "SOURCE_IMAGE[:TAG] or image ID.") var source: String
    @Argument(help: "TARGET_IMAGE[:TAG].") var target: String

    func run() async throws {
        var request = Atoll_Engine_V1_TagImageRequest()
        request.source = source
        request.target = target
        _ = try await GlobalOptions.withEngine { [request] in try await $0.images.tag(request) }
    }
}
