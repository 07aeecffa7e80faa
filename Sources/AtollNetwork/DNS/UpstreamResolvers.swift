import Foundation

/// The resolvers names that are not local are forwarded to, in order.
public struct UpstreamResolvers: Hashable, Sendable {
    /// One upstream resolver.
    public struct Server: Hashable, Sendable, CustomStringConvertible {
        public var address: IPAddress
        public var port: Int

        public init(address: IPAddress, port: Int = 53) {
            self.address = address
            self.port = port
        }

        public var description: String {
            address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
        }
    }

    public var servers: [Server]

    public init(servers: [Server]) { self.servers = servers }

    /// Reads the `nameserver` lines of resolv.conf text (IPv4 or IPv6, port 53); other lines
    /// (`search`, `options`, comments) are ignored, and so are addresses with a zone ("fe80::1%eth0"),
    /// which cannot be reached without it.
    public init(resolvConf: String) {
        var servers: [Server] = []
        for line in resolvConf.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver", let address = IPAddress(fields[1]) else { continue }
            let server = Server(address: address)
            if !servers.contains(server) { servers.append(server) }
        }
        self.servers = servers
    }

    /// The host's resolvers from `path`; none if the file cannot be read.
    public static func fromHost(path: String = "/etc/resolv.conf") -> UpstreamResolvers {
        guard let data = FileManager.default.contents(atPath: path) else { return UpstreamResolvers(servers: []) }
        return UpstreamResolvers(resolvConf: String(decoding: data, as: UTF8.self))
    }
}
