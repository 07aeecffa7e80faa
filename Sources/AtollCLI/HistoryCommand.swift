import ArgumentParser
import AtollAPI
import AtollOCI
import Foundation

/// `atoll history IMAGE`: the image's history, newest first, as `docker history` shows it.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Show the history of an image (how each layer was made).")

    @Flag(name: .customLong("no-trunc"), help: "Do not truncate output.") var noTrunc = false
    @Flag(name: .shortAndLong, help: "Only show image IDs.") var quiet = false
    @Argument(help: "The image.") var image: String

    func run() async throws {
        var request = Atoll_Engine_V1_InspectImageRequest()
        request.reference = image
        let response = try await GlobalOptions.withEngine { [request] in try await $0.images.inspect(request) }
        let config = (try? JSONSerialization.jsonObject(with: response.configJson)) as? [String: Any] ?? [:]
        let manifest = (try? JSONSerialization.jsonObject(with: response.manifestJson)) as? [String: Any] ?? [:]
        let layerSizes = (manifest["layers"] as? [[String: Any]] ?? []).map {
            ($0["size"] as? NSNumber)?.int64Value ?? 0
        }
        let entries = Self.entries(history: config["history"] as? [[String: Any]] ?? [], layerSizes: layerSizes)
        let id = String(response.summary.id.dropFirst(7).prefix(12))
        if quiet {
            for (index, _) in entries.enumerated().reversed() {
                Output.print(index == entries.count - 1 ? id : "<missing>")
            }
            return
        }
        var rows: [[String]] = []
        for (index, entry) in entries.enumerated().reversed() {
            var createdBy = entry.createdBy
            if !noTrunc && createdBy.count > 45 { createdBy = String(createdBy.prefix(44)) + "…" }
            let created = RFC3339.parse(entry.created).map { Output.since(Int64($0.timeIntervalSince1970)) } ?? "N/A"
            rows.append([
                index == entries.count - 1 ? id : "<missing>", created, createdBy, Output.size(entry.size),
                entry.comment,
            ])
        }
        Output.table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows)
    }

    struct Entry {
        var created: String
        var createdBy: String
        var size: Int64
        var comment: String
    }

    /// History entries with the size of the layer each made (entries marked empty_layer made none;
    /// the sizes are those of the layer blobs as stored).
    static func entries(history: [[String: Any]], layerSizes: [Int64]) -> [Entry] {
        var layer = 0
        return history.map { item in
            var size: Int64 = 0
            if (item["empty_layer"] as? Bool) != true {
                size = layer < layerSizes.count ? layerSizes[layer] : 0
                layer += 1
            }
            return Entry(
                created: item["created"] as? String ?? "", createdBy: item["created_by"] as? String ?? "", size: size,
                comment: item["comment"] as? String ?? "")
        }
    }
}
