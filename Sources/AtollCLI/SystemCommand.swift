import ArgumentParser
import AtollAPI

struct SystemCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "system", abstract: "Manage the engine.",
        subcommands: [SystemDiskUsageCommand.self, InfoCommand.self])
}

struct SystemDiskUsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "df", abstract: "Show disk usage.")

    @Flag(name: .shortAndLong, help: "Show each image and volume.") var verbose = false
    @Option(help: "Format: table, json or a template.") var format: String?

    func run() async throws {
        var request = Atoll_Engine_V1_DiskUsageRequest()
        request.verbose = verbose
        let response = try await GlobalOptions.withEngine { [request] in try await $0.system.diskUsage(request) }
        let rows = response.rows.map { row -> [String: String] in
            let percent = row.size > 0 ? " (\(Int(Double(row.reclaimable) * 100 / Double(row.size)))%)" : ""
            return [
                "Type": row.type, "TotalCount": String(row.total), "Active": String(row.active),
                "Size": Output.size(row.size), "Reclaimable": Output.size(row.reclaimable) + percent,
            ]
        }
        RowFormat(format).render(
            rows,
            columns: [
                ("Type", "TYPE"), ("TotalCount", "TOTAL"), ("Active", "ACTIVE"), ("Size", "SIZE"),
                ("Reclaimable", "RECLAIMABLE"),
            ])
        guard verbose else { return }
        Output.print("\nImages space usage:\n")
        Output.table(
            ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"],
            response.images.flatMap { image in
                (image.repoTags.isEmpty ? ["<none>:<none>"] : image.repoTags).map { tag in
                    let split = ImageListing.splitTag(tag)
                    return [
                        split.repository, split.tag, String(image.id.dropFirst(7).prefix(12)),
                        Output.since(image.created),
                        Output.size(image.size), Output.size(image.sharedSize),
                        Output.size(image.size - image.sharedSize),
                        String(image.containers),
                    ]
                }
            })
        Output.print("\nLocal Volumes space usage:\n")
        Output.table(
            ["VOLUME NAME", "LINKS", "SIZE", "CONTAINERS"],
            response.volumes.map { volume in
                [
                    volume.name, String(volume.containers.count), Output.size(volume.size),
                    volume.containers.joined(separator: ","),
                ]
            })
    }
}
