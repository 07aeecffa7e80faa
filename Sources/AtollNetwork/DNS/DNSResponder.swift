import AtollCore
import Logging
import NIOCore

/// How a query reached the server, which decides the response size limit and how it is forwarded.
public enum DNSTransport: Sendable {
    case udp
    case tcp
}

/// Sends one query to one upstream resolver and returns the first reply whose ID matches, or
/// fails once `timeout` has passed. The exchange runs on `eventLoop` (the loop of the client's
/// channel) and must not wait for Swift's cooperative pool: the server answers even when every
/// thread of the pool is busy. The real implementation is `NIODNSUpstreamExchanger`; tests
/// substitute a fake.
public protocol DNSUpstreamExchanging: Sendable {
    func exchange(
        _ query: [UInt8], with server: UpstreamResolvers.Server, over transport: DNSTransport, timeout: Duration,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<[UInt8]>
}

/// The decisions of the embedded DNS server, free of sockets: answers local names from the
/// records, forwards everything else, and never traps on what a client sends.
struct DNSResponder: Sendable {
    /// What to do with one incoming message.
    enum Outcome: Sendable {
        /// Send these bytes back.
        case reply([UInt8])
        /// Send nothing (not a query, or too short to answer).
        case drop
        /// Forward to the upstream resolvers (`forward(_:)`).
        case forward(Forward)
    }

    /// A query to pass on, with what is needed to answer the client afterwards.
    struct Forward: Sendable {
        var bytes: [UInt8]
        var query: DNSMessage
        var transport: DNSTransport
        var limit: Int

        /// The question, for logs.
        var question: String { query.questions.first.map { "\($0.name) \($0.type)" } ?? "?" }
    }

    /// What one upstream reply is worth to the client.
    enum UpstreamOutcome: Sendable {
        /// An answer to pass on (rewritten for the client).
        case answer([UInt8])
        /// A SERVFAIL or REFUSED answer: passed on only if no later server answers.
        case fallback([UInt8])
        /// No reply, or one that does not belong to the query.
        case unusable
    }

    /// Docker's TTL for container records.
    static let ttl: UInt32 = 600

    let records: DNSRecords
    let upstream: [UpstreamResolvers.Server]
    let exchanger: any DNSUpstreamExchanging
    let timeout: Duration
    let logger: Logger

    /// Decides what to do with one message from a client.
    /// `client` is the sender's address: a container sees the names of all its networks.
    func handle(_ bytes: [UInt8], transport: DNSTransport, client: IPAddress? = nil) -> Outcome {
        guard let header = DNSMessage.Header(parsing: bytes), !header.isResponse else {
            logger.debug("dns: dropping a message that is not a query", metadata: ["bytes": "\(bytes.count)"])
            return .drop
        }
        guard header.opcode == 0 else {
            return .reply(DNSMessage.errorResponse(to: header, code: .notImplemented).encoded())
        }
        let query: DNSMessage
        do {
            query = try DNSMessage(parsing: bytes)
        } catch {
            logger.debug("dns: malformed query", metadata: ["error": "\(error)"])
            return .reply(DNSMessage.errorResponse(to: header, code: .formatError).encoded())
        }
        guard query.questions.count == 1, query.additionals.filter({ $0.type == .opt }).count <= 1 else {
            return .reply(DNSMessage.errorResponse(to: header, code: .formatError).encoded())
        }
        let limit =
            switch transport {
            case .udp: min(max(query.ednsUDPPayloadSize ?? 512, 512), 4096)
            case .tcp: Int(UInt16.max)
            }
        if let response = localResponse(to: query, client: client) {
            return .reply(response.encoded(fitting: limit))
        }
        return .forward(Forward(bytes: bytes, query: query, transport: transport, limit: limit))
    }

    /// The answer from the local records, or nil if the question is not about a local name.
    func localResponse(to query: DNSMessage, client: IPAddress? = nil) -> DNSMessage? {
        guard let question = query.questions.first, question.recordClass == 1 else { return nil }
        switch question.type {
        case .a, .aaaa:
            guard !question.name.labels.isEmpty,
                let addresses = records.addresses(for: question.name.key, client: client)
            else {
                return nil
            }
            let answers = addresses.filter { $0.isIPv4 == (question.type == .a) }.map {
                DNSMessage.ResourceRecord(name: question.name, type: question.type, ttl: Self.ttl, data: .address($0))
            }
            logger.debug(
                "dns: local answer",
                metadata: ["name": "\(question.name)", "type": "\(question.type)", "answers": "\(answers.count)"])
            return .response(to: query, answers: answers, authoritative: true, recursionAvailable: !upstream.isEmpty)
        case .ptr:
            guard let address = question.name.reverseAddress, let name = records.name(for: address),
                let target = DNSName(name)
            else { return nil }
            let answer = DNSMessage.ResourceRecord(name: question.name, type: .ptr, ttl: Self.ttl, data: .name(target))
            logger.debug(
                "dns: local answer", metadata: ["name": "\(question.name)", "type": "PTR", "answer": "\(target)"])
            return .response(to: query, answers: [answer], authoritative: true, recursionAvailable: !upstream.isEmpty)
        default:
            return nil
        }
    }

    /// Passes a query to the upstream resolvers in order and returns the reply for the client:
    /// the first good answer, else the last SERVFAIL/REFUSED one, else SERVFAIL. Runs on
    /// `eventLoop` alone, never on Swift's cooperative pool; the future does not fail.
    func forward(_ request: Forward, on eventLoop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        forward(request, from: 0, fallback: nil, on: eventLoop)
    }

    /// Tries `upstream[index...]`, keeping `fallback` from the servers already tried.
    private func forward(_ request: Forward, from index: Int, fallback: [UInt8]?, on eventLoop: any EventLoop)
        -> EventLoopFuture<[UInt8]>
    {
        guard index < upstream.count else {
            if let fallback { return eventLoop.makeSucceededFuture(fallback) }
            logger.debug("dns: no upstream answered", metadata: ["question": "\(request.question)"])
            return eventLoop.makeSucceededFuture(
                DNSMessage.response(to: request.query, code: .serverFailure, recursionAvailable: !upstream.isEmpty)
                    .encoded(fitting: request.limit))
        }
        let server = upstream[index]
        var bytes = request.bytes
        let id = UInt16.random(in: 0...UInt16.max)
        bytes[0] = UInt8(truncatingIfNeeded: id >> 8)
        bytes[1] = UInt8(truncatingIfNeeded: id)
        return exchanger.exchange(bytes, with: server, over: request.transport, timeout: timeout, on: eventLoop)
            .hop(to: eventLoop)
            .map { reply in outcome(of: reply, from: server, sentAs: id, for: request) }
            .recover { error in
                logger.debug(
                    "dns: upstream failed",
                    metadata: ["server": "\(server)", "question": "\(request.question)", "error": "\(error)"])
                return .unusable
            }
            .flatMap { outcome in
                switch outcome {
                case .answer(let answer):
                    eventLoop.makeSucceededFuture(answer)
                case .fallback(let answer):
                    forward(request, from: index + 1, fallback: answer, on: eventLoop)
                case .unusable:
                    forward(request, from: index + 1, fallback: fallback, on: eventLoop)
                }
            }
    }

    /// Checks a reply from `server` to the query sent with `id`: it must be a response with that
    /// ID and the client's question. Puts back the client's ID and truncates to the client's limit.
    func outcome(of reply: [UInt8], from server: UpstreamResolvers.Server, sentAs id: UInt16, for request: Forward)
        -> UpstreamOutcome
    {
        guard let parsed = try? DNSMessage(parsing: reply, questionsOnly: true), parsed.header.id == id,
            parsed.header.isResponse, parsed.questions == request.query.questions
        else {
            logger.debug("dns: upstream reply does not match the query", metadata: ["server": "\(server)"])
            return .unusable
        }
        var answer = reply
        answer[0] = UInt8(truncatingIfNeeded: request.query.header.id >> 8)
        answer[1] = UInt8(truncatingIfNeeded: request.query.header.id)
        if answer.count > request.limit {
            var shortened = DNSMessage(header: parsed.header, questions: parsed.questions)
            shortened.header.id = request.query.header.id
            shortened.header.isTruncated = true
            answer = shortened.encoded()
        }
        let code = parsed.header.responseCode
        logger.debug(
            "dns: forwarded",
            metadata: ["server": "\(server)", "question": "\(request.question)", "code": "\(code)"])
        return code == .serverFailure || code == .refused ? .fallback(answer) : .answer(answer)
    }
}
