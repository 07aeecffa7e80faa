import AtollCore
import GRPCCore
import GRPCNIOTransportHTTP2

/// "HOST:PORT", "[IPv6]:PORT", "IPv6", or "HOST" (with `defaultPort`): a cluster address as
/// `--advertise-addr`, `cluster join` and `-H tcp://` take it.
public func parseHostAndPort(_ address: String, defaultPort: Int) throws -> (host: String, port: Int) {
    var host = address
    var port = defaultPort
    if address.hasPrefix("[") {
        guard let end = address.firstIndex(of: "]") else {
            throw AtollError.invalidArgument("invalid address \"\(address)\": want [IPv6]:PORT")
        }
        host = String(address[address.index(after: address.startIndex)..<end])
        let rest = address[address.index(after: end)...]
        if rest.hasPrefix(":") {
            guard let parsed = Int(rest.dropFirst()) else {
                throw AtollError.invalidArgument("invalid port in \"\(address)\"")
            }
            port = parsed
        } else if !rest.isEmpty {
            throw AtollError.invalidArgument("invalid address \"\(address)\": want [IPv6]:PORT")
        }
    } else if let colon = address.lastIndex(of: ":"), address.firstIndex(of: ":") == colon {
        host = String(address[..<colon])
        guard let parsed = Int(address[address.index(after: colon)...]) else {
            throw AtollError.invalidArgument("invalid port in \"\(address)\"")
        }
        port = parsed
    }
    guard !host.isEmpty, (1...65535).contains(port) else {
        throw AtollError.invalidArgument("invalid address \"\(address)\": want IP:PORT")
    }
    return (host, port)
}

/// A gRPC target for HOST and PORT: an IP address as such (a DNS target would send it as the
/// TLS server name, which NIOSSL refuses for an address), a name through DNS.
public func clusterTarget(host: String, port: Int) -> any ResolvableTarget {
    if host.contains(":") { return .ipv6(address: host, port: port) }
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    if parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) {
        return .ipv4(address: host, port: port)
    }
    return .dns(host: host, port: port)
}
