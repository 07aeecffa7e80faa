import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import Foundation
import GRPCCore
import Glibc

struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load images from a docker-save archive or an OCI layout tar (plain, gzip or zstd).")

    @Option(name: [.short, .long], help: "Read from this file instead of standard input.")
    var input: String?

    @Flag(name: .shortAndLong, help: "Print nothing.")
    var quiet = false

    func run() async throws {
        if input == nil && isatty(STDIN_FILENO) == 1 {
            throw ValidationError("requested load from stdin, but stdin is empty: use -i FILE or pipe an archive")
        }
        let fd = try InputFile.open(input ?? "-")
        let request = StreamingClientRequest<Atoll_Engine_V1_LoadRequest> { writer in
            var first = Atoll_Engine_V1_LoadRequest()
            first.header = Atoll_Engine_V1_LoadHeader()
            try await writer.write(first)
            try await EngineClient.streamFile(fd) { data in
                var chunk = Atoll_Engine_V1_LoadRequest()
                chunk.chunk = data
                try await writer.write(chunk)
            }
        }
        let response = try await GlobalOptions.withEngine { try await $0.images.load(request: request) }
        guard !quiet else { return }
        for image in response.images {
            Output.print(
                image.reference.isEmpty ? "Loaded image ID: \(image.imageID)" : "Loaded image: \(image.reference)")
        }
    }
}
