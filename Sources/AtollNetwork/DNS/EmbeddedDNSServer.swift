import AtollCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The DNS server of one user-defined network, like Docker's embedded DNS server: it listens on
/// the network's gateway address, UDP and TCP on the same port, answers container names, aliases
/// and short IDs from `records` (A, AAAA, PTR) and forwards every other query to the upstream
/// resolvers. Queries are answered on the event loops of `group` alone (futures, scheduled
/// timeouts), never on Swift's cooperative pool, so a starved pool does not stop name resolution.
public final class EmbeddedDNSServer: Sendable {
    /// The address the server listens on.
    public let address: IPAddress
    /// The bound port (the one asked for, or the one the kernel chose for port 0).
    public let port: Int
    public let records: DNSRecords

    private let udpChannel: any Channel
    private let tcpChannel: any Channel
    private let connections: DNSConnectionSet
    private let logger: Logger

    private init(
        address: IPAddress, port: Int, records: DNSRecords, udpChannel: any Channel, tcpChannel: any Channel,
        connections: DNSConnectionSet, logger: Logger
    ) {
        self.address = address
        self.port = port
        self.records = records
        self.udpChannel = udpChannel
        self.tcpChannel = tcpChannel
        self.connections = connections
        self.logger = logger
    }

    /// Binds UDP and TCP on `address:port` and starts answering. With port 0 the kernel picks a
    /// port that is free for both. An upstream equal to the server's own address and port is
    /// skipped, so a query never loops back. Throws `AtollError.unavailable` if it cannot bind.
    public static func start(
        address: IPAddress, port: Int = 53, records: DNSRecords, upstream: UpstreamResolvers,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, upstreamTimeout: Duration = .seconds(2),
        logger: Logger
    ) async throws -> EmbeddedDNSServer {
        try await start(
            address: address, port: port, records: records, upstream: upstream, group: group,
            exchanger: NIODNSUpstreamExchanger(), upstreamTimeout: upstreamTimeout, logger: logger)
    }

    /// `start` with the upstream exchange replaced (tests).
    public static func start(
        address: IPAddress, port: Int = 53, records: DNSRecords, upstream: UpstreamResolvers,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, exchanger: any DNSUpstreamExchanging,
        upstreamTimeout: Duration = .seconds(2), logger: Logger
    ) async throws -> EmbeddedDNSServer {
        guard (0...65_535).contains(port) else { throw AtollError.invalidArgument("invalid dns server port \(port)") }
        let endpoint = address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
        let socketAddress: SocketAddress
        do {
            socketAddress = try SocketAddress(ipAddress: address.description, port: port)
        } catch {
            throw AtollError.invalidArgument("invalid dns server address \(endpoint)", cause: error)
        }
        let inFlight = DNSInFlightLimit(limit: 1024)
        var lastError: (any Error)?
        for _ in 0..<(port == 0 ? 16 : 1) {
            let udp: any Channel
            do {
                udp = try await DatagramBootstrap(group: group)
                    .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 4096))
                    .bind(to: socketAddress).get()
            } catch {
                throw AtollError(.unavailable, "cannot bind the dns server to udp \(endpoint)", cause: error)
            }
            let bound = udp.localAddress?.port ?? port
            let responder = DNSResponder(
                records: records,
                upstream: upstream.servers.filter { !($0.address == address && $0.port == bound) },
                exchanger: exchanger, timeout: upstreamTimeout, logger: logger)
            let connections = DNSConnectionSet()
            do {
                try await udp.pipeline.addHandler(DNSDatagramHandler(responder: responder, inFlight: inFlight)).get()
                let tcp = try await ServerBootstrap(group: group)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .serverChannelOption(.backlog, value: 128)
                    .childChannelOption(.allowRemoteHalfClosure, value: true)
                    .childChannelInitializer { channel in
                        connections.insert(channel)
                        return channel.eventLoop.makeCompletedFuture {
                            let pipeline = channel.pipeline.syncOperations
                            try pipeline.addHandler(IdleStateHandler(readTimeout: .seconds(30)))
                            try pipeline.addHandler(ByteToMessageHandler(DNSFrameDecoder()))
                            try pipeline.addHandler(DNSStreamHandler(responder: responder, inFlight: inFlight))
                        }
                    }
                    .bind(to: SocketAddress(ipAddress: address.description, port: bound)).get()
                logger.debug(
                    "dns: serving",
                    metadata: ["address": "\(address)", "port": "\(bound)", "upstream": "\(responder.upstream)"])
                return EmbeddedDNSServer(
                    address: address, port: bound, records: records, udpChannel: udp, tcpChannel: tcp,
                    connections: connections, logger: logger)
            } catch {
                try? await udp.close()
                lastError = error
            }
        }
        throw AtollError(.unavailable, "cannot bind the dns server to tcp \(endpoint)", cause: lastError)
    }

    /// Closes both sockets and every open TCP connection. Queries being forwarded are dropped.
    public func stop() async {
        try? await tcpChannel.close()
        try? await udpChannel.close()
        for connection in connections.removeAll() { try? await connection.close() }
        logger.debug("dns: stopped", metadata: ["address": "\(address)", "port": "\(port)"])
    }
}

/// The open TCP connections of a server, so `stop()` can close them.
final class DNSConnectionSet: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func insert(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        channels.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { [self] _ in _ = channels.withLock { $0.removeValue(forKey: key) } }
    }

    func removeAll() -> [any Channel] {
        channels.withLock { channels in
            defer { channels = [:] }
            return Array(channels.values)
        }
    }
}
