import AtollCore
import Foundation

/// `--add-host NAME:IP` (also `NAME=IP`, and `host-gateway` is not supported).
public struct ExtraHost: Sendable, Equatable {
    public var name: String
    public var address: IPAddress

    public init(parsing text: String) throws {
        let separator = text.firstIndex(of: "=") ?? text.firstIndex(of: ":")
        guard let separator else {
            throw AtollError.invalidArgument("invalid --add-host \"\(text)\": want NAME:IP")
        }
        let name = String(text[..<separator])
        let value = String(text[text.index(after: separator)...]).trimmingCharacters(in: ["[", "]"])
        guard !name.isEmpty, !name.contains(where: \.isWhitespace) else {
            throw AtollError.invalidArgument("invalid --add-host \"\(text)\": the host name is empty or has spaces")
        }
        guard let address = IPAddress(value) else {
            throw AtollError.invalidArgument("invalid --add-host \"\(text)\": \"\(value)\" is not an IP address")
        }
        self.name = name
        self.address = address
    }
}

/// A container's /etc/hosts, laid out as Docker writes it.
struct HostsFile {
    var hostname: String
    var extraHosts: [String]

    func render(addresses: [String]) -> String {
        var lines = [
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            "fe00::0\tip6-localnet",
            "ff00::0\tip6-mcastprefix",
            "ff02::1\tip6-allnodes",
            "ff02::2\tip6-allrouters",
        ]
        for host in extraHosts {
            if let parsed = try? ExtraHost(parsing: host) { lines.append("\(parsed.address)\t\(parsed.name)") }
        }
        if addresses.isEmpty {
            lines.append("127.0.1.1\t\(hostname)")
        } else {
            lines += addresses.map { "\($0)\t\(hostname)" }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A container's /etc/resolv.conf.
enum ResolvConf {
    /// `--dns` wins; else the embedded server (on a bridge network); else the host's servers,
    /// without loopback ones (they would mean the container itself), falling back to public ones
    /// as Docker does. Search domains and options come from the flags, else from the host.
    static func render(
        host: String, embeddedServers: [String], dns: [String], search: [String], options: [String], hostNetwork: Bool
    ) -> String {
        let hostLines = host.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        func values(_ keyword: String) -> [String] {
            hostLines.filter { $0.hasPrefix(keyword + " ") || $0.hasPrefix(keyword + "\t") }
                .flatMap { $0.split(whereSeparator: \.isWhitespace).dropFirst().map(String.init) }
        }
        var servers = dns
        if servers.isEmpty { servers = embeddedServers }
        if servers.isEmpty {
            servers = values("nameserver").filter { hostNetwork || !Self.isLoopback($0) }
            if servers.isEmpty && !hostNetwork { servers = ["8.8.8.8", "8.8.4.4"] }
        }
        let searchDomains = search.isEmpty ? values("search") : search
        let optionValues = options.isEmpty ? values("options") : options
        var lines = servers.map { "nameserver \($0)" }
        if !searchDomains.isEmpty { lines.append("search \(searchDomains.joined(separator: " "))") }
        if !optionValues.isEmpty { lines.append("options \(optionValues.joined(separator: " "))") }
        return lines.joined(separator: "\n") + "\n"
    }

    static func isLoopback(_ text: String) -> Bool {
        guard let address = IPAddress(text) else { return false }
        switch address {
        case .v4(let v4): return v4.value >> 24 == 127
        case .v6(let v6): return v6.high == 0 && v6.low == 1
        }
    }
}
