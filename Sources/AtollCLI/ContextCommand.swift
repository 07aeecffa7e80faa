import ArgumentParser
import AtollClient
import AtollCore
import Foundation

/// Named endpoints, as `docker context`: a host (unix:// or tcp://) and, for tcp://, the TLS
/// directory. Kept in the CLI's config.json ("contexts", "currentContext"); `default` is the
/// local daemon and cannot be changed. -H and ATOLL_HOST win over any context; --context and
/// ATOLL_CONTEXT over the current one.
struct AtollContext: Equatable {
    var name: String
    var host: String
    var tlsDirectory: String?
    var description: String

    static let defaultName = "default"
    static let builtIn = AtollContext(
        name: defaultName, host: EngineEndpoint.defaultHost, tlsDirectory: nil, description: "The local atolld")

    /// All contexts, `default` first, and the current one's name.
    static func load(_ store: CLIConfigFile = CLIConfigFile()) throws -> (all: [AtollContext], current: String) {
        let document = try store.document()
        let saved = (document["contexts"] as? [String: [String: String]] ?? [:]).map { name, fields in
            AtollContext(
                name: name, host: fields["host"] ?? "", tlsDirectory: fields["tlsDir"],
                description: fields["description"] ?? "")
        }
        return ([builtIn] + saved.sorted { $0.name < $1.name }, document["currentContext"] as? String ?? defaultName)
    }

    /// The context this run uses: --context / ATOLL_CONTEXT, else the current one.
    static func selected() throws -> AtollContext {
        let (all, current) = try load()
        let name = ProcessInfo.processInfo.environment["ATOLL_CONTEXT"].flatMap { $0.isEmpty ? nil : $0 } ?? current
        guard let context = all.first(where: { $0.name == name }) else {
            throw AtollError.notFound("context \"\(name)\" not found: atoll context ls")
        }
        return context
    }

    static func validName(_ name: String) throws {
        guard let first = name.first, name.count <= 64, first.isLetter || first.isNumber,
            name.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) })
        else {
            throw AtollError.invalidArgument("invalid context name \"\(name)\": want [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        }
    }
}

struct ContextCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "context", abstract: "Manage contexts (saved -H and --tls-dir settings).",
        subcommands: [
            ContextCreateCommand.self, ContextUseCommand.self, ContextListCommand.self, ContextRemoveCommand.self,
        ])
}

struct ContextCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a context.")
    @Option(help: "unix:///path or tcp://MANAGER:PORT.") var host: String
    @Option(help: "For tcp://: the directory with ca.pem, cert.pem and key.pem.") var tlsDir: String?
    @Option(help: "A description.") var description = ""
    @Argument(help: "The context's name.") var name: String

    func run() throws {
        try AtollContext.validName(name)
        guard name != AtollContext.defaultName else {
            throw AtollError.alreadyExists("context \"default\" is built in")
        }
        let tls = tlsDir.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
        _ = try EngineEndpoint(parsing: host, tlsDirectory: tls)
        let store = CLIConfigFile()
        var document = try store.document()
        var contexts = document["contexts"] as? [String: [String: String]] ?? [:]
        guard contexts[name] == nil else { throw AtollError.alreadyExists("context \"\(name)\" already exists") }
        var fields = ["host": host, "description": description]
        if let tls { fields["tlsDir"] = tls }
        contexts[name] = fields
        document["contexts"] = contexts
        try store.write(document)
        Output.print(name)
    }
}

struct ContextUseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "use", abstract: "Make a context the current one.")
    @Argument(help: "The context's name.") var name: String

    func run() throws {
        let (all, _) = try AtollContext.load()
        guard all.contains(where: { $0.name == name }) else {
            throw AtollError.notFound("context \"\(name)\" not found: atoll context ls")
        }
        let store = CLIConfigFile()
        var document = try store.document()
        document["currentContext"] = name == AtollContext.defaultName ? nil : name
        try store.write(document)
        Output.print(name)
    }
}

struct ContextListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List contexts.", aliases: ["list"])
    @Flag(name: .shortAndLong, help: "Only display names.") var quiet = false

    func run() throws {
        let (all, current) = try AtollContext.load()
        if quiet {
            for context in all { Output.print(context.name) }
            return
        }
        Output.table(
            ["NAME", "DESCRIPTION", "HOST", "TLS DIR"],
            all.map { [$0.name + ($0.name == current ? " *" : ""), $0.description, $0.host, $0.tlsDirectory ?? ""] })
    }
}

struct ContextRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove contexts.", aliases: ["remove"])
    @Flag(name: .shortAndLong, help: "Remove the current context too (default becomes current).") var force = false
    @Argument(help: "Context names.") var names: [String]

    func run() throws {
        guard !names.isEmpty else { throw ValidationError("rm needs at least one context") }
        let store = CLIConfigFile()
        var document = try store.document()
        var contexts = document["contexts"] as? [String: [String: String]] ?? [:]
        for name in names {
            guard name != AtollContext.defaultName else {
                throw AtollError.invalidArgument("context \"default\" is built in and cannot be removed")
            }
            guard contexts.removeValue(forKey: name) != nil else {
                throw AtollError.notFound("context \"\(name)\" not found")
            }
            if document["currentContext"] as? String == name {
                guard force else {
                    throw AtollError.failedPrecondition(
                        "context \"\(name)\" is the current one: use another first, or rm --force")
                }
                document["currentContext"] = nil
            }
        }
        document["contexts"] = contexts
        try store.write(document)
        for name in names { Output.print(name) }
    }
}
