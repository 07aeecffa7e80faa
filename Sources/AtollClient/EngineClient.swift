import AtollAPI
import AtollCore
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Glibc

/// Where the engine is: `unix:///path/to/atolld.sock`, or `tcp://MANAGER:PORT` with a TLS
/// directory (ca.pem, cert.pem, key.pem: the admin bundle `atoll cluster init` writes) for a
/// cluster manager's port, which serves the cluster's Control API.
public struct EngineEndpoint: Sendable, CustomStringConvertible {
    public static let defaultHost = "unix:///run/atoll/atolld.sock"
    public enum Address: Sendable, Equatable {
        case unix(path: String)
        case tcp(host: String, port: Int)
    }
    public let address: Address
    public let tlsDirectory: String?

    public init(parsing host: String, tlsDirectory: String? = nil) throws {
        self.tlsDirectory = tlsDirectory
        if host.hasPrefix("unix://") {
            let path = String(host.dropFirst(7))
            guard path.hasPrefix("/") else {
                throw AtollError.invalidArgument("invalid host \"\(host)\": want unix:///absolute/path")
            }
            address = .unix(path: path)
        } else if host.hasPrefix("/") {
            address = .unix(path: host)
        } else if host.hasPrefix("tcp://") {
            var rest = String(host.dropFirst(6))
            while rest.hasSuffix("/") { rest.removeLast() }
            let (name, port) = try parseHostAndPort(rest, defaultPort: 2377)
            guard tlsDirectory != nil else {
                throw AtollError.invalidArgument(
                    "\(host) needs --tls-dir DIR (ca.pem, cert.pem, key.pem: the admin bundle atoll cluster init wrote)"
                )
            }
            address = .tcp(host: name, port: port)
        } else {
            throw AtollError.invalidArgument("invalid host \"\(host)\": want unix:///path or tcp://HOST:PORT")
        }
    }

    public var description: String {
        switch address {
        case .unix(let path): "unix://\(path)"
        case .tcp(let host, let port): host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
        }
    }
}

/// A connection to atolld with a typed client per service.
public struct EngineClient: Sendable {
    public let system: Atoll_Engine_V1_System.Client<HTTP2ClientTransport.Posix>
    public let images: Atoll_Engine_V1_Images.Client<HTTP2ClientTransport.Posix>
    public let containers: Atoll_Engine_V1_Containers.Client<HTTP2ClientTransport.Posix>
    public let volumes: Atoll_Engine_V1_Volumes.Client<HTTP2ClientTransport.Posix>
    public let networks: Atoll_Engine_V1_Networks.Client<HTTP2ClientTransport.Posix>
    public let builder: Atoll_Engine_V1_Builder.Client<HTTP2ClientTransport.Posix>
    public let membership: Atoll_Cluster_V1_Membership.Client<HTTP2ClientTransport.Posix>
    public let control: Atoll_Cluster_V1_Control.Client<HTTP2ClientTransport.Posix>
    public let endpoint: EngineEndpoint

    /// Connects, runs `body`, and closes. A daemon that is not there is reported in one line
    /// before any RPC is tried.
    public static func withConnection<T: Sendable>(
        to endpoint: EngineEndpoint, _ body: @Sendable (EngineClient) async throws -> T
    ) async throws -> T {
        let transport: HTTP2ClientTransport.Posix
        switch endpoint.address {
        case .unix(let path):
            switch SocketProbe.connectError(path) {
            case 0: break
            case EACCES, EPERM:
                throw AtollError(
                    .permissionDenied,
                    "permission denied connecting to atolld at \(endpoint): the socket is for root only")
            default:
                throw AtollError(.unavailable, "cannot connect to atolld at \(endpoint) — is it running?")
            }
            transport = try HTTP2ClientTransport.Posix(
                target: .unixDomainSocket(path: path),
                transportSecurity: .plaintext,
                config: .defaults {
                    // Large windows and frames for archives streamed in 1 MiB chunks (see atolld).
                    $0.http2.targetWindowSize = 16 << 20
                    $0.http2.maxFrameSize = 1 << 20
                })
        case .tcp(let host, let port):
            transport = try HTTP2ClientTransport.Posix(
                target: clusterTarget(host: host, port: port),
                transportSecurity: try ClusterClientTLS.security(directory: endpoint.tlsDirectory ?? "."))
        }
        return try await withGRPCClient(transport: transport) { client in
            try await body(
                EngineClient(
                    system: Atoll_Engine_V1_System.Client(wrapping: client),
                    images: Atoll_Engine_V1_Images.Client(wrapping: client),
                    containers: Atoll_Engine_V1_Containers.Client(wrapping: client),
                    volumes: Atoll_Engine_V1_Volumes.Client(wrapping: client),
                    networks: Atoll_Engine_V1_Networks.Client(wrapping: client),
                    builder: Atoll_Engine_V1_Builder.Client(wrapping: client),
                    membership: Atoll_Cluster_V1_Membership.Client(wrapping: client),
                    control: Atoll_Cluster_V1_Control.Client(wrapping: client),
                    endpoint: endpoint))
        }
    }

    /// Streams a file descriptor's content as 1 MiB chunks through `write`.
    public static func streamFile(_ fd: FileDescriptor, _ write: (Data) async throws -> Void) async throws {
        while true {
            let chunk = try await BlockingWork.run { try fd.readChunk(maximum: 1 << 20) }
            if chunk.isEmpty { return }
            try await write(chunk)
        }
    }
}
