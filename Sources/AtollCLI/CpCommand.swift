import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import AtollStorage
import Foundation
import Glibc

struct CpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp",
        abstract: "Copy files between a container and the local file system.",
        discussion: """
            atoll cp CONTAINER:SRC_PATH DEST_PATH|-   copies out (a tar on standard output with -)
            atoll cp SRC_PATH|- CONTAINER:DEST_DIR    copies in (a tar from standard input with -);
            the destination in the container must be an existing directory.
            """)

    @Argument(help: "Source: CONTAINER:PATH, a local path, or - (a tar on standard input).") var source: String
    @Argument(help: "Destination: CONTAINER:PATH, a local directory, or - (a tar on standard output).")
    var destination: String

    func run() async throws {
        switch (Self.split(source), Self.split(destination)) {
        case (let (container, path)?, nil): try await copyOut(container: container, path: path)
        case (nil, let (container, path)?): try await copyIn(container: container, path: path)
        case (.some, .some): throw ValidationError("copying between containers is not supported")
        case (nil, nil): throw ValidationError("one of source and destination must be CONTAINER:PATH")
        }
    }

    /// "name:/path" → (name, /path); local paths (with a "/" before any ":", or none) → nil.
    static func split(_ argument: String) -> (String, String)? {
        guard let colon = argument.firstIndex(of: ":") else { return nil }
        let container = String(argument[..<colon])
        guard !container.isEmpty, !container.contains("/") else { return nil }
        return (container, String(argument[argument.index(after: colon)...]))
    }

    private func copyOut(container: String, path: String) async throws {
        var request = Atoll_Engine_V1_CopyFromRequest()
        request.container = container
        request.path = path
        let destination = self.destination
        if destination == "-" {
            try await GlobalOptions.withEngine { [request] client in
                try await client.containers.copyFrom(request) { response in
                    for try await chunk in response.messages { Output.write(chunk.data) }
                }
            }
            return
        }
        var info = stat()
        guard stat(destination, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw ValidationError("destination \"\(destination)\" must be an existing directory")
        }
        // The tar comes from the container: it is unpacked with the same checks as image layers.
        let (readEnd, writeEnd) = try ProcessLauncher.pipe()
        let extract = Task.detached {
            defer { readEnd.close() }
            try Layer.apply(from: readEnd, toDirectory: destination, whiteouts: .plain)
        }
        do {
            try await GlobalOptions.withEngine { [request] client in
                try await client.containers.copyFrom(request) { response in
                    for try await chunk in response.messages {
                        try chunk.data.withUnsafeBytes { try writeEnd.writeAll($0) }
                    }
                }
            }
        } catch {
            writeEnd.close()
            _ = try? await extract.value
            throw error
        }
        writeEnd.close()
        try await extract.value
    }

    private func copyIn(container: String, path: String) async throws {
        let source = self.source
        var header = Atoll_Engine_V1_CopyToRequest()
        header.header.container = container
        header.header.path = path
        let input: FileDescriptor
        var archiver: Task<Void, any Error>?
        if source == "-" {
            input = FileDescriptor(owning: dup(0))
        } else {
            let url = URL(fileURLWithPath: source)
            guard FileManager.default.fileExists(atPath: source) else {
                throw ValidationError("could not find the file \(source) on this host")
            }
            let (readEnd, writeEnd) = try ProcessLauncher.pipe()
            input = readEnd
            let name = url.lastPathComponent
            let parent = url.deletingLastPathComponent().path
            archiver = Task.detached {
                defer { writeEnd.close() }
                try Layer.archive(entry: name, inDirectory: parent, to: writeEnd)
            }
        }
        try await GlobalOptions.withEngine { [header] client in
            _ = try await client.containers.copyTo(requestProducer: { writer in
                try await writer.write(header)
                try await EngineClient.streamFile(input) { data in
                    var chunk = Atoll_Engine_V1_CopyToRequest()
                    chunk.chunk = data
                    try await writer.write(chunk)
                }
            })
        }
        try await archiver?.value
    }
}
