import AtollAPI
import Foundation

/// Rows of `atoll images`, shared by `images` and `image ls`.
enum ImageListing {
    static func run(options: ImageListOptions) async throws {
        var request = Atoll_Engine_V1_ListImagesRequest()
        request.all = options.all
        request.filters = options.filter
        if let repository = options.repository { request.filters.append("reference=\(repository)") }
        let response = try await GlobalOptions.withEngine { [request] in try await $0.images.list(request) }
        let rows = response.images.flatMap { image -> [[String: String]] in
            let shortID = options.noTrunc ? image.id : String(image.id.dropFirst(7).prefix(12))
            let tags = image.repoTags.isEmpty ? ["<none>:<none>"] : image.repoTags
            return tags.map { tag in
                let split = splitTag(tag)
                return [
                    "ID": shortID, "Repository": split.repository, "Tag": split.tag,
                    "Digest": image.targetDigest.isEmpty ? "<none>" : image.targetDigest,
                    "CreatedSince": Output.since(image.created),
                    "CreatedAt": image.created > 0
                        ? ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(image.created)))
                        : "",
                    "Size": Output.size(image.size), "SharedSize": Output.size(image.sharedSize),
                    "Containers": String(image.containers),
                ]
            }
        }
        if options.quiet {
            var seen = Set<String>()
            for row in rows where seen.insert(row["ID"] ?? "").inserted { Output.print(row["ID"] ?? "") }
            return
        }
        var columns: [(field: String, header: String)] = [("Repository", "REPOSITORY"), ("Tag", "TAG")]
        if options.digests { columns.append(("Digest", "DIGEST")) }
        columns += [("ID", "IMAGE ID"), ("CreatedSince", "CREATED"), ("Size", "SIZE")]
        RowFormat(options.format).render(rows, columns: columns)
    }

    /// "registry:5000/a/b:tag" → ("registry:5000/a/b", "tag"); a port's colon is not a tag's.
    static func splitTag(_ tag: String) -> (repository: String, tag: String) {
        guard let colon = tag.lastIndex(of: ":"), !tag[colon...].contains("/") else { return (tag, "<none>") }
        return (String(tag[..<colon]), String(tag[tag.index(after: colon)...]))
    }
}
