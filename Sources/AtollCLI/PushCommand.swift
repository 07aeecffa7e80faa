import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import Foundation
import Glibc

struct PushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push", abstract: "Upload an image to a registry.",
        discussion: """
            The image's name says where it goes: atoll tag busybox 127.0.0.1:5000/bb:1, then
            atoll push 127.0.0.1:5000/bb:1. Blobs the repository has already are not sent again.
            """)
    @Flag(name: .shortAndLong, help: "Suppress verbose output.") var quiet = false
    @Argument(help: "NAME[:TAG]") var reference: String

    func run() async throws {
        var request = Atoll_Engine_V1_PushRequest()
        request.reference = reference
        if let login = try CLIConfigFile.credentials(forImage: reference) {
            (request.username, request.password) = login
        }
        let display = PullDisplay(quiet: quiet, terminal: isatty(1) == 1, verbs: .push)
        if !quiet { display.line("The push refers to repository [\(reference)]") }
        let digest = try await GlobalOptions.withEngine { [request] client -> String in
            try await client.images.push(request, options: .longRunning) { response in
                var digest = ""
                for try await event in response.messages {
                    if event.kind == "stored" { digest = event.digest }
                    display.show(event)
                }
                return digest
            }
        }
        let lastComponent = reference.split(separator: "/").last.map(String.init) ?? reference
        let tag = lastComponent.contains(":") ? String(lastComponent.split(separator: ":").last ?? "") : "latest"
        Output.print(quiet ? reference : "\(tag): digest: \(digest)")
    }
}
