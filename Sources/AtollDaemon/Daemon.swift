import AtollAPI
import AtollCore
import AtollEngine
import Dispatch
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Glibc
import Logging

/// How atolld was asked to run.
public struct DaemonOptions: Sendable {
    public var root: String
    public var socket: String
    public var storageDriver: String?
    public var runDirectory: String

    public init(root: String, socket: String, storageDriver: String?, runDirectory: String) {
        self.root = root
        self.socket = socket
        self.storageDriver = storageDriver
        self.runDirectory = runDirectory
    }
}

/// atolld: owns one root (by lock file), opens the engine and serves the engine API on a unix
/// socket until SIGTERM or SIGINT, then stops gracefully.
public enum Daemon {
    /// The largest message accepted: chunks are 1 MiB, so this leaves ample room.
    static let maxMessageBytes = 16 << 20

    public static func run(_ options: DaemonOptions) async throws {
        let logger = Logger(label: "atoll.daemon")
        signal(SIGPIPE, SIG_IGN)
        guard geteuid() == 0 else {
            throw AtollError(.permissionDenied, "atolld must run as root (it mounts file systems and runs containers)")
        }
        try Syscall.mkdirAll(options.root, mode: 0o711)
        let lock = try LockFile(path: "\(options.root)/atolld.lock", purpose: "the root \(options.root)")
        defer { lock.release() }
        try claimSocket(options.socket)

        let engine = try await BlockingWork.run {
            try Engine(
                configuration: EngineConfiguration(
                    root: options.root, storageDriver: options.storageDriver, runDirectory: options.runDirectory))
        }
        // Probe the runtimes (containers need them), then take back the containers: exits recorded
        // while atolld was down, monitors still running, restart policies.
        _ = await Task.detached { engine.runtimeStatuses() }.value
        try await BlockingWork.run { try engine.containers.recover() }

        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: options.socket),
            transportSecurity: .plaintext,
            config: .defaults {
                $0.rpc.maxRequestPayloadSize = maxMessageBytes
                // Archives stream in 1 MiB chunks: HTTP/2's default 64 KiB window and 16 KiB frames
                // would cost a flow-control round trip every few frames.
                $0.http2.targetWindowSize = 16 << 20
                $0.http2.maxFrameSize = 1 << 20
            })
        let server = GRPCServer(
            transport: transport,
            services: [
                SystemService(engine: engine, socketPath: options.socket), ImagesService(engine: engine),
                ContainersService(engine: engine), VolumesService(engine: engine),
            ])

        let signals = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                logger.info("received \(number == SIGTERM ? "SIGTERM" : "SIGINT"), shutting down")
                server.beginGracefulShutdown()
            }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }

        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            guard (try await server.listeningAddress) != nil else {
                throw AtollError(.unavailable, "cannot listen on \(options.socket)")
            }
            // Root only: the socket gives full control of the host.
            guard chmod(options.socket, 0o660) == 0, chown(options.socket, 0, 0) == 0 else {
                server.beginGracefulShutdown()
                throw AtollError(.permissionDenied, "cannot restrict the permissions of \(options.socket)")
            }
            logger.info(
                "atolld \(AtollVersion.version) serving on unix://\(options.socket) (root \(options.root), storage driver \(engine.snapshotter.driverName))"
            )
        }
        unlink(options.socket)
        logger.info("atolld stopped")
    }

    /// Makes sure no live daemon answers on `path` (the transport would silently replace its
    /// socket file), and creates the socket's directory.
    static func claimSocket(_ path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try Syscall.mkdirAll(directory, mode: 0o711)
        guard FileSystem.exists(path) else { return }
        if SocketProbe.answers(path) {
            throw AtollError.failedPrecondition("another daemon is already listening on \(path)")
        }
        unlink(path)
    }
}
