import ArgumentParser
import AtollAPI
import AtollCore
import Foundation
import GRPCCore
import Glibc

struct SaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save", abstract: "Save images to a tar archive that docker load, podman load and OCI tools read.")

    @Option(name: [.short, .long], help: "Write to this file instead of standard output.")
    var output: String?

    @Argument(help: "Images.") var images: [String]

    func run() async throws {
        guard !images.isEmpty else { throw ValidationError("save needs at least one image") }
        if output == nil && isatty(STDOUT_FILENO) == 1 {
            throw ValidationError("cowardly refusing to save to a terminal: use -o FILE or redirect standard output")
        }
        // Into a temporary file beside the target, renamed when complete: a failed save leaves nothing.
        let temporary = output.map { "\($0).atoll-save-\(Identifier.random().prefix(12))" }
        let fd: FileDescriptor
        if let temporary {
            // O_EXCL | O_NOFOLLOW: never write through a file or symlink someone planted there.
            do {
                fd = try Syscall.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o644)
            } catch {
                throw AtollError.invalidArgument(
                    "cannot write \(output ?? ""): \(String(cString: strerror(error.errno)).lowercased())")
            }
        } else {
            fd = FileDescriptor(owning: dup(STDOUT_FILENO))
        }
        var request = Atoll_Engine_V1_SaveRequest()
        request.images = images
        do {
            try await GlobalOptions.withEngine { [request] client in
                try await client.images.save(request) { response in
                    for try await chunk in response.messages {
                        try await BlockingWork.run { try chunk.data.withUnsafeBytes { try fd.writeAll($0) } }
                    }
                }
            }
            if let temporary, let output {
                try fd.fsync(temporary)
                try Syscall.rename(from: temporary, to: output)
            }
        } catch {
            if let temporary { unlink(temporary) }
            throw error
        }
    }
}
