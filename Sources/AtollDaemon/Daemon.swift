import AtollAPI
import AtollCore
import AtollEngine
import AtollImages
import AtollRegistry
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
    /// HOST:PORT for the embedded registry (nil: none).
    public var registryAddress: String?
    /// Registries pulled from over plain HTTP (loopback ones always are).
    public var insecureRegistries: [String] = []
    /// `--registry-mirror REGISTRY=MIRROR` values.
    public var registryMirrors: [String] = []
    /// The default bridge network's device.
    public var bridge = "atoll0"

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
        // Options are checked before anything on the host changes.
        var registries = RegistryAccess(insecureRegistries: Set(options.insecureRegistries))
        try registries.addMirrors(options.registryMirrors)
        try Syscall.mkdirAll(options.root, mode: 0o711)
        let lock = try LockFile(path: "\(options.root)/atolld.lock", purpose: "the root \(options.root)")
        defer { lock.release() }
        try claimSocket(options.socket)

        let engine = try await BlockingWork.run {
            try Engine(
                configuration: EngineConfiguration(
                    root: options.root, storageDriver: options.storageDriver, runDirectory: options.runDirectory,
                    defaultBridge: options.bridge))
        }
        // However the daemon ends from here on (a stop or a failure), the engine's host-side pieces
        // go with it (the DNS servers, the sealed runtime binaries); containers keep running.
        defer { engine.shutdown() }
        // Probe the runtimes (containers need them), then take back the containers: exits recorded
        // while atolld was down, monitors still running, restart policies.
        _ = await Task.detached { engine.runtimeStatuses() }.value
        try await BlockingWork.run { try engine.recover() }

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
        // The cluster role ROOT/cluster records (manager or worker), taken up again.
        let cluster = ClusterController(root: options.root, host: engine.host)
        try await cluster.resume()

        let server = GRPCServer(
            transport: transport,
            services: [
                SystemService(engine: engine, socketPath: options.socket),
                ImagesService(
                    engine: engine, registries: registries),
                ContainersService(engine: engine), VolumesService(engine: engine), NetworksService(engine: engine),
                BuilderService(engine: engine, registries: registries),
                MembershipService(cluster: cluster), ControlService(cluster: cluster, local: true),
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
        let registry = try await startRegistry(options.registryAddress, engine: engine, logger: logger)
        defer { registry?.cancel() }

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
        await cluster.shutdown()
        logger.info("atolld stopped")
    }

    /// Starts the embedded registry on `address` and waits until it listens (or failed to).
    static func startRegistry(_ address: String?, engine: Engine, logger: Logger) async throws -> Task<Void, Never>? {
        guard let address else { return nil }
        let (host, port) = try parseHostPort(address)
        let (events, continuation) = AsyncStream<Result<Int, any Error>>.makeStream()
        let server = RegistryServer(store: engine.registry)
        let task = Task {
            do {
                try await server.run(host: host, port: port) { continuation.yield(.success($0)) }
            } catch {
                continuation.yield(.failure(error))
            }
            continuation.finish()
        }
        for await event in events {
            switch event {
            case .success(let bound):
                logger.info("registry serving the distribution API on http://\(host):\(bound)/v2/")
                if !["127.0.0.1", "::1", "localhost"].contains(host) {
                    logger.warning(
                        "the registry has no authentication yet: anyone who reaches \(host):\(bound) can push and delete"
                    )
                }
                return task
            case .failure(let error):
                throw AtollError(.unavailable, "cannot serve the registry on \(address)", cause: error)
            }
        }
        throw AtollError(.unavailable, "the registry on \(address) stopped before it listened")
    }

    /// "HOST:PORT" or "[IPv6]:PORT".
    static func parseHostPort(_ address: String) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw AtollError.invalidArgument("invalid --registry-addr \"\(address)\": want HOST:PORT")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else {
            throw AtollError.invalidArgument("invalid --registry-addr \"\(address)\": the host is missing")
        }
        return (host, port)
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
