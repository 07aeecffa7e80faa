import AtollAPI
import AtollCore
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Glibc

/// Where the engine is: `unix:///path/to/atolld.sock` (tcp:// arrives with the cluster).
public struct EngineEndpoint: Sendable, CustomStringConvertible {
    public static let defaultHost = "unix:///run/atoll/atolld.sock"
    public let socketPath: String

    public init(parsing host: String) throws {
        if host.hasPrefix("unix://") {
            let path = String(host.dropFirst(7))
            guard path.hasPrefix("/") else {
                throw AtollError.invalidArgument("invalid host \"\(host)\": want unix:///absolute/path")
            }
            socketPath = path
        } else if host.hasPrefix("/") {
            socketPath = host
        } else if host.hasPrefix("tcp://") {
            throw AtollError(
                .unsupported, "invalid host \"\(host)\": tcp:// needs cluster mode, which this atoll does not have yet")
        } else {
            throw AtollError.invalidArgument("invalid host \"\(host)\": want unix:///path")
        }
    }

    public var description: String { "unix://\(socketPath)" }
}

/// A connection to atolld with a typed client per service.
public struct EngineClient: Sendable {
    public let system: Atoll_Engine_V1_System.Client<HTTP2ClientTransport.Posix>
    public let images: Atoll_Engine_V1_Images.Client<HTTP2ClientTransport.Posix>
    public let containers: Atoll_Engine_V1_Containers.Client<HTTP2ClientTransport.Posix>
    public let volumes: Atoll_Engine_V1_Volumes.Client<HTTP2ClientTransport.Posix>
    public let networks: Atoll_Engine_V1_Networks.Client<HTTP2ClientTransport.Posix>
    public let endpoint: EngineEndpoint

    /// Connects, runs `body`, and closes. A daemon that is not there is reported in one line
    /// before any RPC is tried.
    public static func withConnection<T: Sendable>(
        to endpoint: EngineEndpoint, _ body: @Sendable (EngineClient) async throws -> T
    ) async throws -> T {
        switch SocketProbe.connectError(endpoint.socketPath) {
        case 0: break
        case EACCES, EPERM:
            throw AtollError(
                .permissionDenied, "permission denied connecting to atolld at \(endpoint): the socket is for root only")
        default:
            throw AtollError(.unavailable, "cannot connect to atolld at \(endpoint) — is it running?")
        }
        let transport = try HTTP2ClientTransport.Posix(
            target: .unixDomainSocket(path: endpoint.socketPath),
            transportSecurity: .plaintext,
            config: .defaults {
                // Large windows and frames for archives streamed in 1 MiB chunks (see atolld).
                $0.http2.targetWindowSize = 16 << 20
                $0.http2.maxFrameSize = 1 << 20
            })
        return try await withGRPCClient(transport: transport) { client in
            try await body(
                EngineClient(
                    system: Atoll_Engine_V1_System.Client(wrapping: client),
                    images: Atoll_Engine_V1_Images.Client(wrapping: client),
                    containers: Atoll_Engine_V1_Containers.Client(wrapping: client),
                    volumes: Atoll_Engine_V1_Volumes.Client(wrapping: client),
                    networks: Atoll_Engine_V1_Networks.Client(wrapping: client),
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
