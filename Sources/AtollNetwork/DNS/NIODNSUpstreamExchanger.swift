import AtollCore
import NIOCore
import NIOPosix

/// Exchanges a query with an upstream resolver over a fresh socket: a connected UDP socket (so
/// the kernel drops datagrams from anyone else, and a closed port fails at once) or a TCP
/// connection with two-byte length framing. Gives up after `timeout`. Everything runs on the
/// event loop it is given: socket, reply, deadline and clean-up.
public struct NIODNSUpstreamExchanger: DNSUpstreamExchanging {
    public init() {}

    public func exchange(
        _ query: [UInt8], with server: UpstreamResolvers.Server, over transport: DNSTransport, timeout: Duration,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<[UInt8]> {
        guard query.count >= 12 else {
            return eventLoop.makeFailedFuture(AtollError.invalidArgument("dns query of \(query.count) bytes"))
        }
        let id = UInt16(query[0]) << 8 | UInt16(query[1])
        let remote: SocketAddress
        do {
            remote = try SocketAddress(ipAddress: server.address.description, port: server.port)
        } catch {
            return eventLoop.makeFailedFuture(
                AtollError(.unavailable, "invalid dns upstream address \(server)", cause: error))
        }
        let promise = eventLoop.makePromise(of: [UInt8].self)
        let deadline = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            promise.fail(AtollError(.unavailable, "dns upstream \(server) did not answer in \(timeout)"))
        }
        promise.futureResult.whenComplete { _ in deadline.cancel() }
        let connected: EventLoopFuture<any Channel>
        let message: @Sendable (ByteBufferAllocator) -> ByteBuffer
        switch transport {
        case .udp:
            connected = DatagramBootstrap(group: eventLoop)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_535))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            DNSUpstreamReplyHandler<AddressedEnvelope<ByteBuffer>>(
                                id: id, promise: promise, payload: { $0.data }))
                    }
                }
                .connect(to: remote)
            message = { $0.buffer(bytes: query) }
        case .tcp:
            connected = ClientBootstrap(group: eventLoop)
                .connectTimeout(TimeAmount(timeout))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(DNSFrameDecoder()))
                        try channel.pipeline.syncOperations.addHandler(
                            DNSUpstreamReplyHandler<ByteBuffer>(id: id, promise: promise, payload: { $0 }))
                    }
                }
                .connect(to: remote)
            message = { DNSFrameDecoder.frame(query, allocator: $0) }
        }
        connected.whenComplete { result in
            switch result {
            case .success(let channel):
                // Closed once answered, failed or timed out (at once if that happened already).
                promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                channel.writeAndFlush(message(channel.allocator)).whenFailure { error in
                    promise.fail(AtollError(.unavailable, "cannot send to dns upstream \(server)", cause: error))
                }
            case .failure(let error):
                promise.fail(AtollError(.unavailable, "cannot reach dns upstream \(server)", cause: error))
            }
        }
        return promise.futureResult
    }
}
