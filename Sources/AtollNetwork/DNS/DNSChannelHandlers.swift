import AtollCore
import NIOCore
import Synchronization

/// Splits a DNS-over-TCP stream into messages: each is preceded by its length in two bytes.
struct DNSFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
            buffer.readableBytes >= 2 + Int(length)
        else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        guard let frame = buffer.readSlice(length: Int(length)) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }

    /// A message with its two-byte length prefix.
    static func frame(_ message: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: message.count + 2)
        buffer.writeInteger(UInt16(clamping: message.count))
        buffer.writeBytes(message.prefix(Int(UInt16.max)))
        return buffer
    }
}

/// Counts queries being forwarded (over all of a server's sockets and event loops), so a flood
/// cannot start unbounded work.
final class DNSInFlightLimit: Sendable {
    private let count = Mutex(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func tryAcquire() -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func release() { count.withLock { $0 -= 1 } }
}

/// Answers queries arriving on the server's UDP socket: local names at once, other names once
/// the upstream exchange (on this channel's event loop) completes.
final class DNSDatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let responder: DNSResponder
    let inFlight: DNSInFlightLimit

    init(responder: DNSResponder, inFlight: DNSInFlightLimit) {
        self.responder = responder
        self.inFlight = inFlight
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let client = envelope.remoteAddress
        let source = client.ipAddress.flatMap { IPAddress($0) }
        switch responder.handle(Array(envelope.data.readableBytesView), transport: .udp, client: source) {
        case .drop:
            return
        case .reply(let reply):
            let buffer = context.channel.allocator.buffer(bytes: reply)
            context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: client, data: buffer)), promise: nil)
        case .forward(let request):
            guard inFlight.tryAcquire() else {
                responder.logger.debug("dns: too many queries in flight, dropping one")
                return
            }
            let channel = context.channel
            let inFlight = inFlight
            responder.forward(request, on: context.eventLoop).whenComplete { result in
                inFlight.release()
                guard case .success(let reply) = result else { return }
                let buffer = channel.allocator.buffer(bytes: reply)
                channel.writeAndFlush(AddressedEnvelope(remoteAddress: client, data: buffer), promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ECONNREFUSED from an earlier reply to a client that went away, and the like: not fatal.
        responder.logger.debug("dns: udp socket error", metadata: ["error": "\(error)"])
    }
}

/// Answers length-framed queries on one TCP connection; several per connection, answered as
/// they complete, all on the connection's event loop. When the client shuts down its side, the connection closes once the queries
/// still being forwarded are answered.
final class DNSStreamHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct State {
        var pending = 0
        var inputClosed = false
    }

    let responder: DNSResponder
    let inFlight: DNSInFlightLimit
    private let state = Mutex(State())

    init(responder: DNSResponder, inFlight: DNSInFlightLimit) {
        self.responder = responder
        self.inFlight = inFlight
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let source = context.channel.remoteAddress?.ipAddress.flatMap { IPAddress($0) }
        switch responder.handle(Array(frame.readableBytesView), transport: .tcp, client: source) {
        case .drop:
            context.close(promise: nil)
        case .reply(let reply):
            context.writeAndFlush(
                wrapOutboundOut(DNSFrameDecoder.frame(reply, allocator: context.channel.allocator)), promise: nil)
        case .forward(let request):
            guard inFlight.tryAcquire() else {
                responder.logger.debug("dns: too many queries in flight, closing a tcp connection")
                context.close(promise: nil)
                return
            }
            state.withLock { $0.pending += 1 }
            let channel = context.channel
            responder.forward(request, on: context.eventLoop)
                .flatMap { reply in channel.writeAndFlush(DNSFrameDecoder.frame(reply, allocator: channel.allocator)) }
                .whenComplete { [self] _ in
                    inFlight.release()
                    let done = state.withLock { state in
                        state.pending -= 1
                        return state.pending == 0 && state.inputClosed
                    }
                    if done { channel.close(promise: nil) }
                }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            let idle = state.withLock { state in
                state.inputClosed = true
                return state.pending == 0
            }
            if idle { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        responder.logger.debug("dns: tcp connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

/// Waits on an upstream socket for the reply carrying `id`, and completes `promise` with it.
/// Errors (ECONNREFUSED from a port nobody listens on, a closed connection) fail it at once.
final class DNSUpstreamReplyHandler<Message>: ChannelInboundHandler {
    typealias InboundIn = Message

    private let id: UInt16
    private let promise: EventLoopPromise<[UInt8]>
    private let payload: (Message) -> ByteBuffer

    init(id: UInt16, promise: EventLoopPromise<[UInt8]>, payload: @escaping (Message) -> ByteBuffer) {
        self.id = id
        self.promise = promise
        self.payload = payload
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = payload(unwrapInboundIn(data))
        guard buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == id else { return }
        promise.succeed(Array(buffer.readableBytesView))
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(AtollError(.unavailable, "dns upstream closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(AtollError(.unavailable, "dns upstream failed", cause: error))
    }
}
