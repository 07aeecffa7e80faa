import AtollCore

/// What a container asked for on one network (`--network`, `--ip`, `--network-alias`, or
/// `network connect`).
public struct NetworkAttachment: Codable, Sendable, Equatable {
    /// The network's name or ID as given.
    public var network: String
    public var ipv4: String
    public var ipv6: String
    public var aliases: [String]

    public init(network: String, ipv4: String = "", ipv6: String = "", aliases: [String] = []) {
        self.network = network
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.aliases = aliases
    }
}

/// A container's network settings besides its mode (`--network`): the networks it joins, the
/// ports it publishes and what goes into its /etc/hosts and /etc/resolv.conf.
public struct ContainerNetworking: Codable, Sendable, Equatable {
    /// The networks joined, in order: the first is the one `--network` named.
    public var attachments: [NetworkAttachment] = []
    public var ports: [PortSpec] = []
    /// `-P`: publish every port the image exposes, each on a free host port.
    public var publishAll = false
    public var dns: [String] = []
    public var dnsSearch: [String] = []
    public var dnsOptions: [String] = []
    /// `--add-host NAME:IP`, as given.
    public var extraHosts: [String] = []

    public init() {}
}

/// One `-p` binding: `[ip:][hostPort[-end]:]containerPort[-end][/tcp|udp]`.
public struct PortSpec: Codable, Sendable, Equatable, Hashable, CustomStringConvertible {
    public var proto: String
    /// "" binds every address of the host.
    public var hostIP: String
    /// 0 picks a free port when the container starts.
    public var hostPort: Int
    public var containerPort: Int

    public init(proto: String = "tcp", hostIP: String = "", hostPort: Int = 0, containerPort: Int) {
        self.proto = proto
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.containerPort = containerPort
    }

    public var description: String {
        let host = hostIP.isEmpty ? "" : (hostIP.contains(":") ? "[\(hostIP)]:" : "\(hostIP):")
        return "\(host)\(hostPort == 0 ? "" : String(hostPort)):\(containerPort)/\(proto)"
    }

    /// Parses one `-p` value; a range gives one spec per port.
    public static func parse(_ text: String) throws -> [PortSpec] {
        func bad(_ why: String) -> AtollError { .invalidArgument("invalid port specification \"\(text)\": \(why)") }
        var rest = Substring(text)
        var proto = "tcp"
        if let slash = rest.lastIndex(of: "/") {
            proto = rest[rest.index(after: slash)...].lowercased()
            rest = rest[..<slash]
            guard ["tcp", "udp", "sctp"].contains(proto) else { throw bad("unknown protocol \"\(proto)\"") }
            guard proto != "sctp" else { throw bad("sctp is not supported") }
        }
        var hostIP = ""
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            hostIP = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            guard rest.hasPrefix(":") else { throw bad("expected \":\" after the address") }
            rest = rest.dropFirst()
        }
        var fields = rest.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        if hostIP.isEmpty && fields.count == 3 { hostIP = fields.removeFirst() }
        guard (1...2).contains(fields.count), let container = fields.last, !container.isEmpty else {
            throw bad("want [ip:][hostPort:]containerPort[/protocol]")
        }
        if !hostIP.isEmpty {
            guard let address = IPAddress(hostIP) else { throw bad("\"\(hostIP)\" is not an IP address") }
            guard address.isIPv4 else { throw bad("only IPv4 host addresses can be published") }
            if address == .v4(IPv4Address(0)) { hostIP = "" }
        }
        let containerPorts = try range(container, bad)
        let hostPorts = fields.count == 2 && !fields[0].isEmpty ? try range(fields[0], bad) : nil
        if let hostPorts, hostPorts.count != containerPorts.count {
            throw bad("the host and container port ranges differ in length")
        }
        return containerPorts.enumerated().map { index, port in
            PortSpec(proto: proto, hostIP: hostIP, hostPort: hostPorts.map { $0[index] } ?? 0, containerPort: port)
        }
    }

    private static func range(_ text: String, _ bad: (String) -> AtollError) throws -> [Int] {
        let bounds = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(bounds.count) else { throw bad("\"\(text)\" is not a port or a range") }
        let numbers = try bounds.map { bound -> Int in
            guard let port = Int(bound), bound.allSatisfy(\.isNumber), (1...65535).contains(port) else {
                throw bad("\"\(bound)\" is not a port number (1-65535)")
            }
            return port
        }
        guard numbers.count == 1 || numbers[0] <= numbers[1] else { throw bad("the range \"\(text)\" is reversed") }
        return Array(numbers[0]...(numbers.last ?? numbers[0]))
    }
}
