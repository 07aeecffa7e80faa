import ArgumentParser
import AtollAPI
import Foundation

struct PsOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Show all containers (default shows just running).") var all = false
    @Flag(name: .shortAndLong, help: "Only display container IDs.") var quiet = false
    @Flag(name: .long, help: "Don't truncate output.") var noTrunc = false
    @Option(name: .shortAndLong, help: "Filter output (id, name, label, status, exited, ancestor, health).")
    var filter: [String] = []
    @Option(help: "Format: table, json or a template such as '{{.ID}} {{.Names}}'.") var format: String?
}

struct PsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers.")
    @OptionGroup var options: PsOptions
    func run() async throws { try await Self.list(options) }

    static func list(_ options: PsOptions) async throws {
        var request = Atoll_Engine_V1_ListContainersRequest()
        request.all = options.all
        request.filters = options.filter
        let response = try await GlobalOptions.withEngine { [request] in try await $0.containers.list(request) }
        if options.quiet {
            for container in response.containers {
                Output.print(options.noTrunc ? container.id : String(container.id.prefix(12)))
            }
            return
        }
        let rows = response.containers.map { container -> [String: String] in
            var command = container.command
            if !options.noTrunc && command.count > 20 { command = String(command.prefix(19)) + "…" }
            return [
                "ID": options.noTrunc ? container.id : String(container.id.prefix(12)), "Image": container.image,
                "Command": "\"\(command)\"", "CreatedAt": Output.since(container.created), "Status": container.status,
                "Names": container.name, "State": container.state, "Health": container.health,
                "Labels": container.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
                    separator: ","),
                "RunningFor": Output.since(container.created), "Ports": container.ports.joined(separator: ", "),
                "Networks": container.networks.joined(separator: ","),
            ]
        }
        RowFormat(options.format).render(
            rows,
            columns: [
                ("ID", "CONTAINER ID"), ("Image", "IMAGE"), ("Command", "COMMAND"), ("CreatedAt", "CREATED"),
                ("Status", "STATUS"), ("Ports", "PORTS"), ("Names", "NAMES"),
            ])
    }
}

struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Show details of containers (or images) as JSON.")
    @Option(name: .shortAndLong, help: "A template such as '{{.State.Status}}', or json.") var format: String?
    @Option(name: .long, help: "Only inspect objects of this type (container, image or volume).") var type: String?
    @Argument(help: "Containers or images.") var objects: [String]

    func run() async throws {
        guard !objects.isEmpty else { throw ValidationError("inspect needs at least one object") }
        let type = self.type
        try await Self.show(objects, format: format) { try await Self.document($0, type: type) }
    }

    /// Prints each object's document as JSON (one array) or through a template; an object that
    /// cannot be found is an error line, and the exit status is 1 after the others are shown.
    static func show(_ names: [String], format: String?, document: (String) async throws -> Any) async throws {
        var documents: [Any] = []
        var failed = false
        for name in names {
            do {
                documents.append(try await document(name))
            } catch {
                failed = true
                FileHandle.standardErrorLine("Error: \(Atoll.describe(error))")
            }
        }
        if let format, format != "json" {
            for document in documents { Output.print(RowFormat.fill(format, flatten(document))) }
        } else {
            Output.print(Output.json(documents))
        }
        if failed { throw ExitCode.failure }
    }

    static func document(_ name: String, type: String?) async throws -> Any {
        if type != "image" {
            do {
                var request = Atoll_Engine_V1_ContainerRequest()
                request.container = name
                let response = try await GlobalOptions.withEngine { [request] in
                    try await $0.containers.inspect(request)
                }
                return try JSONSerialization.jsonObject(with: response.json)
            } catch {
                if type == "container" { throw error }
            }
        }
        if type != "volume" {
            var request = Atoll_Engine_V1_InspectImageRequest()
            request.reference = name
            do {
                let response = try await GlobalOptions.withEngine { [request] in try await $0.images.inspect(request) }
                return ImageInspectCommand.document(response)
            } catch {
                if type == "image" { throw ValidationError("no such image: \(name)") }
            }
        }
        do {
            return try await VolumeInspectCommand.document(name)
        } catch {
            throw ValidationError("no such object: \(name)")
        }
    }

    /// Every nested field under its dotted path ("State.Status"), values as text, for templates.
    static func flatten(_ value: Any, prefix: String = "") -> [String: String] {
        var result: [String: String] = [:]
        let text: String
        if let string = value as? String {
            text = string
        } else if let number = value as? NSNumber {
            let type = String(cString: number.objCType)
            text = type == "c" || type == "B" ? (number.boolValue ? "true" : "false") : number.stringValue
        } else {
            text = Output.json(value, pretty: false)
        }
        if !prefix.isEmpty { result[prefix] = text }
        if let object = value as? [String: Any] {
            for (key, child) in object {
                result.merge(flatten(child, prefix: prefix.isEmpty ? key : "\(prefix).\(key)")) { $1 }
            }
        }
        return result
    }
}
