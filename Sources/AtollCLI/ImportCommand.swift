import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import Foundation
import GRPCCore
import Glibc

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Create an image from a root file-system tarball (plain, gzip or zstd).")

    @Option(
        name: [.short, .customLong("change")], help: "Apply a Dockerfile instruction to the image (CMD, ENV, ...).")
    var change: [String] = []

    @Option(name: [.short, .long], help: "Commit message for the image's history.")
    var message = ""

    @Option(help: "os/arch[/variant] of the image (default: this host's).")
    var platform = ""

    @Argument(help: "The tarball, or - for standard input.") var file: String
    @Argument(help: "REPOSITORY[:TAG] for the new image.") var reference: String?

    func run() async throws {
        let fd = try InputFile.open(file)
        var header = Atoll_Engine_V1_ImportHeader()
        header.reference = reference ?? ""
        header.changes = change
        header.message = message
        header.platform = platform
        let request = StreamingClientRequest<Atoll_Engine_V1_ImportRequest> { [header] writer in
            var first = Atoll_Engine_V1_ImportRequest()
            first.header = header
            try await writer.write(first)
            try await EngineClient.streamFile(fd) { data in
                var chunk = Atoll_Engine_V1_ImportRequest()
                chunk.chunk = data
                try await writer.write(chunk)
            }
        }
        let response = try await GlobalOptions.withEngine { try await $0.images.importRootfs(request: request) }
        Output.print(response.imageID)
    }
}

/// Opens a file named on the command line ("-" is standard input) with a readable error.
enum InputFile {
    static func open(_ path: String) throws -> FileDescriptor {
        if path == "-" { return FileDescriptor(owning: dup(STDIN_FILENO)) }
        do {
            return try Syscall.open(path, flags: O_RDONLY)
        } catch {
            throw AtollError.invalidArgument(
                "cannot read \(path): \(String(cString: strerror(error.errno)).lowercased())")
        }
    }
}
