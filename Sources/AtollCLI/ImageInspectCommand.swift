import ArgumentParser
import AtollAPI
import Foundation

struct ImageInspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show details of images as JSON.")

    @Option(name: [.short, .long], help: "A template such as '{{.Id}}' (top-level fields), or json.")
    var format: String?

    @Argument(help: "Images.") var images: [String]

    func run() async throws {
        guard !images.isEmpty else { throw ValidationError("inspect needs at least one image") }
        var documents: [[String: Any]] = []
        var failure: (any Error)?
        for image in images {
            var request = Atoll_Engine_V1_InspectImageRequest()
            request.reference = image
            do {
                let response = try await GlobalOptions.withEngine { [request] in try await $0.images.inspect(request) }
                documents.append(Self.document(response))
            } catch {
                failure = error
                FileHandle.standardErrorLine("Error: \(Atoll.describe(error))")
            }
        }
        if let format, format != "json" {
            for document in documents {
                let row = document.mapValues { value -> String in
                    if let text = value as? String { return text }
                    if let number = value as? NSNumber { return number.stringValue }
                    return Output.json(value, pretty: false)
                }
                Output.print(RowFormat.fill(format, row))
            }
        } else {
            Output.print(Output.json(documents))
        }
        if failure != nil { throw ExitCode.failure }
    }

    /// Docker's image-inspect shape, filled from the stored config.
    static func document(_ response: Atoll_Engine_V1_InspectImageResponse) -> [String: Any] {
        let config = (try? JSONSerialization.jsonObject(with: response.configJson)) as? [String: Any] ?? [:]
        let summary = response.summary
        var document: [String: Any] = [
            "Id": summary.id,
            "RepoTags": summary.repoTags,
            "RepoDigests": summary.repoDigests,
            "Created": config["created"] ?? "",
            "Author": config["author"] ?? "",
            "Architecture": config["architecture"] ?? "",
            "Os": config["os"] ?? "",
            "Size": summary.size,
            "Config": config["config"] ?? [String: Any](),
            "RootFS": ["Type": "layers", "Layers": response.diffIds],
            "GraphDriver": ["Name": response.storageDriver, "Data": response.storageData],
            "Metadata": ["ManifestDigest": summary.targetDigest, "ManifestMediaType": response.manifestMediaType],
        ]
        if let variant = config["variant"] { document["Variant"] = variant }
        if let history = config["history"] { document["History"] = history }
        return document
    }
}
