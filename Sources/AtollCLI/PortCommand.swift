import ArgumentParser
import Foundation

/// `atoll port CONTAINER [PRIVATE_PORT[/PROTO]]`: the container's published ports, as docker port.
struct PortCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port", abstract: "List port mappings or a specific mapping for the container.")
    @Argument(help: "The container.") var container: String
    @Argument(help: "A private port, with /tcp or /udp (tcp by default).") var privatePort: String?

    func run() async throws {
        let document = try await InspectCommand.document(container, type: "container") as? [String: Any]
        let settings = document?["NetworkSettings"] as? [String: Any]
        let ports = settings?["Ports"] as? [String: [[String: String]]] ?? [:]
        var wanted: String?
        if let privatePort { wanted = privatePort.contains("/") ? privatePort : "\(privatePort)/tcp" }
        let lines = ports.keys.sorted { Self.order($0) < Self.order($1) }.filter { wanted == nil || $0 == wanted }
            .flatMap { key in
                (ports[key] ?? []).map { binding in
                    let address = "\(binding["HostIp"] ?? "0.0.0.0"):\(binding["HostPort"] ?? "")"
                    return wanted == nil ? "\(key) -> \(address)" : address
                }
            }
        if lines.isEmpty, let wanted {
            throw ValidationError("no public port '\(wanted)' published for \(container)")
        }
        for line in lines { Output.print(line) }
    }

    private static func order(_ key: String) -> (Int, String) {
        (Int(key.split(separator: "/").first ?? "") ?? 0, key)
    }
}
