import AtollCore
import Foundation
import Glibc
import NIOCore
import Synchronization
import Testing

@testable import AtollNetwork

/// An upstream exchange that records the queries it gets and answers each with a canned reply.
final class RecordingExchanger: DNSUpstreamExchanging {
    let queries = Mutex<[[UInt8]]>([])

    func exchange(
        _ query: [UInt8], with server: UpstreamResolvers.Server, over transport: DNSTransport, timeout: Duration,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<[UInt8]> {
        queries.withLock { $0.append(query) }
        return eventLoop.makeCompletedFuture {
            var reply = try DNSMessage(parsing: query)
            reply.header.isResponse = true
            reply.header.recursionAvailable = true
            reply.answers = [.init(name: .root, type: .txt, ttl: 60, data: .raw([5] + Array("hello".utf8)))]
            return reply.encoded()
        }
    }
}

/// Servers on loopback addresses and kernel-chosen ports; stopped at the end of each test.
@Suite(.serialized)
struct DNSServerTests {
    static let web = IPAddress("10.0.0.2")
    static let web6 = IPAddress("fd00::2")

    static func records() throws -> DNSRecords {
        let records = DNSRecords()
        records.replace([
            "web": [try #require(web), try #require(web6)],
            "db": [try #require(IPAddress("10.0.0.3"))],
            "v6only": [try #require(IPAddress("fd00::9"))],
        ])
        return records
    }

    static func start(
        _ records: DNSRecords, host: String = "127.0.0.1", upstream: [UpstreamResolvers.Server] = [],
        exchanger: (any DNSUpstreamExchanging)? = nil, timeout: Duration = .seconds(2)
    ) async throws -> EmbeddedDNSServer {
        let address = try #require(IPAddress(host))
        if let exchanger {
            return try await EmbeddedDNSServer.start(
                address: address, port: 0, records: records, upstream: UpstreamResolvers(servers: upstream),
                exchanger: exchanger, upstreamTimeout: timeout, logger: dnsTestLogger)
        }
        return try await EmbeddedDNSServer.start(
            address: address, port: 0, records: records, upstream: UpstreamResolvers(servers: upstream),
            upstreamTimeout: timeout, logger: dnsTestLogger)
    }

    /// Asks the server over UDP and parses the reply (which must come within five seconds).
    static func ask(_ server: EmbeddedDNSServer, _ name: String, _ type: DNSRecordType, id: UInt16 = 0x4242)
        async throws -> DNSMessage
    {
        let query = try DNSMessage.queryBytes(id: id, name, type)
        let reply = try #require(try await DNSTestClient.udp(query, host: "\(server.address)", port: server.port))
        let message = try DNSMessage(parsing: reply)
        #expect(message.header.id == id)
        #expect(message.header.isResponse)
        return message
    }

    @Test("A and AAAA queries for a local name answer its addresses of that family, authoritatively, TTL 600")
    func answersLocalNames() async throws {
        let server = try await Self.start(try Self.records())
        defer { Task { await server.stop() } }
        let a = try await Self.ask(server, "web", .a)
        #expect(a.header.responseCode == .noError)
        #expect(a.header.isAuthoritative)
        #expect(a.answerAddresses == [Self.web].compactMap { $0 })
        #expect(a.answers.first?.ttl == 600)
        #expect(a.questions.first?.name == DNSName("web"))
        let aaaa = try await Self.ask(server, "web", .aaaa)
        #expect(aaaa.answerAddresses == [Self.web6].compactMap { $0 })
        #expect(aaaa.answers.first?.type == .aaaa)
        await server.stop()
    }

    @Test("names match whatever their case, with the question's case kept in the answer")
    func caseInsensitiveQuery() async throws {
        let server = try await Self.start(try Self.records())
        defer { Task { await server.stop() } }
        let reply = try await Self.ask(server, "WeB.", .a)
        #expect(reply.answerAddresses == [Self.web].compactMap { $0 })
        #expect(reply.answers.first?.name.description == "WeB.")
        await server.stop()
    }

    @Test("a local name without an address of the family asked for answers NOERROR with no records")
    func localNameWithoutFamily() async throws {
        let exchanger = RecordingExchanger()
        let server = try await Self.start(
            try Self.records(), upstream: [.init(address: .v4(IPv4Address(0x7f00_0001)), port: 9)], exchanger: exchanger
        )
        defer { Task { await server.stop() } }
        let aaaa = try await Self.ask(server, "db", .aaaa)
        #expect(aaaa.header.responseCode == .noError)
        #expect(aaaa.answers.isEmpty)
        #expect(aaaa.header.isAuthoritative)
        let a = try await Self.ask(server, "v6only", .a)
        #expect(a.header.responseCode == .noError && a.answers.isEmpty)
        #expect(exchanger.queries.withLock { $0.isEmpty })
        await server.stop()
    }

    @Test("PTR queries for local addresses answer the name, for IPv4 and IPv6")
    func reverseLookups() async throws {
        let server = try await Self.start(try Self.records())
        defer { Task { await server.stop() } }
        for address in [Self.web, Self.web6] {
            let reverse = DNSName(reverseOf: try #require(address))
            let reply = try await Self.ask(server, reverse.description, .ptr)
            #expect(reply.header.responseCode == .noError)
            #expect(reply.answers.first?.data == .name(try #require(DNSName("web"))))
        }
        await server.stop()
    }

    @Test("an unknown name is forwarded to the upstream server, whose answer comes back under the client's ID")
    func forwardsToUpstream() async throws {
        let upstreamRecords = DNSRecords()
        upstreamRecords.replace(["example.test": [try #require(IPAddress("192.0.2.1"))]])
        let upstream = try await Self.start(upstreamRecords, host: "127.0.0.2")
        defer { Task { await upstream.stop() } }
        let server = try await Self.start(
            try Self.records(), upstream: [.init(address: upstream.address, port: upstream.port)])
        defer { Task { await server.stop() } }
        let reply = try await Self.ask(server, "Example.Test", .a, id: 0xbeef)
        #expect(reply.header.responseCode == .noError)
        #expect(reply.answerAddresses == [IPAddress("192.0.2.1")].compactMap { $0 })
        // Over TCP the server forwards over TCP.
        let overTCP = try await DNSTestClient.tcp(
            [try DNSMessage.queryBytes(id: 0x0101, "example.test", .a)], host: "127.0.0.1", port: server.port,
            count: 1)
        let parsed = try DNSMessage(parsing: try #require(overTCP.first))
        #expect(parsed.header.id == 0x0101)
        #expect(parsed.answerAddresses == [IPAddress("192.0.2.1")].compactMap { $0 })
        await server.stop()
        await upstream.stop()
    }

    @Test("other types, even for local names, are forwarded verbatim except for the ID")
    func forwardsOtherTypesVerbatim() async throws {
        let exchanger = RecordingExchanger()
        let server = try await Self.start(
            try Self.records(), upstream: [.init(address: .v4(IPv4Address(0x7f00_0001)), port: 9)], exchanger: exchanger
        )
        defer { Task { await server.stop() } }
        let query = try DNSMessage.queryBytes(id: 0x5151, "web", .mx)
        let reply = try #require(try await DNSTestClient.udp(query, host: "127.0.0.1", port: server.port))
        let parsed = try DNSMessage(parsing: reply)
        #expect(parsed.header.id == 0x5151)
        #expect(parsed.answers.first?.type == .txt)
        let sent = try #require(exchanger.queries.withLock { $0.first })
        #expect(sent.count == query.count)
        #expect(sent.dropFirst(2) == query.dropFirst(2))
        await server.stop()
    }

    @Test("with the upstream down or silent, the client gets SERVFAIL; with none, at once")
    func upstreamDown() async throws {
        let silent = try DNSTestClient.silentSocket(host: "127.0.0.1")
        defer { close(silent.fd) }
        let closed = try DNSTestClient.silentSocket(host: "127.0.0.1")
        close(closed.fd)
        let server = try await Self.start(
            try Self.records(),
            upstream: [
                .init(address: .v4(IPv4Address(0x7f00_0001)), port: closed.port),
                .init(address: .v4(IPv4Address(0x7f00_0001)), port: silent.port),
            ], timeout: .milliseconds(300))
        defer { Task { await server.stop() } }
        let reply = try await Self.ask(server, "nowhere.test", .a)
        #expect(reply.header.responseCode == .serverFailure)
        #expect(reply.questions.first?.name == DNSName("nowhere.test"))
        let lonely = try await Self.start(try Self.records())
        defer { Task { await lonely.stop() } }
        #expect(try await Self.ask(lonely, "nowhere.test", .a).header.responseCode == .serverFailure)
        await server.stop()
        await lonely.stop()
    }

    @Test("local and forwarded queries, over UDP and TCP, are answered while every cooperative thread is blocked")
    func answersWithoutTheCooperativePool() async throws {
        let upstreamRecords = DNSRecords()
        upstreamRecords.replace(["example.test": [try #require(IPAddress("192.0.2.1"))]])
        let upstream = try await Self.start(upstreamRecords, host: "127.0.0.2")
        defer { Task { await upstream.stop() } }
        let server = try await Self.start(
            try Self.records(), upstream: [.init(address: upstream.address, port: upstream.port)])
        defer { Task { await server.stop() } }
        let port = server.port
        let local = try DNSMessage.queryBytes(id: 1, "web", .a)
        let forwarded = try DNSMessage.queryBytes(id: 2, "example.test", .a)
        let forwardedOverTCP = try DNSMessage.queryBytes(id: 3, "example.test", .a)

        // One task more than the pool has threads, each holding its thread for up to 10 s; the
        // client, on a thread of its own, gives up on an answer after 3 s. A server that forwards
        // from a Swift task, or an upstream exchange that awaits, gets no thread until too late.
        let threads = ProcessInfo.processInfo.activeProcessorCount
        let blocker = CooperativePoolBlocker(count: threads + 1, limit: .seconds(10))
        let replies = try await DNSTestClient.onThread { () -> [[UInt8]?] in
            defer { blocker.release() }
            _ = blocker.waitUntilBlocking(threads: threads, timeout: .seconds(10))
            return [
                try DNSTestClient.blockingUDP(local, host: "127.0.0.1", port: port, timeout: 3),
                try DNSTestClient.blockingUDP(forwarded, host: "127.0.0.1", port: port, timeout: 3),
                try? DNSTestClient.blockingTCP([forwardedOverTCP], host: "127.0.0.1", port: port, count: 1, timeout: 3)
                    .first,
            ]
        }
        await blocker.finish()
        #expect(blocker.expired == 0)
        #expect(replies.map { $0 != nil } == [true, true, true], "local, forwarded over UDP, forwarded over TCP")
        let parsed = try replies.map { try DNSMessage(parsing: try #require($0)) }
        #expect(parsed.map(\.header.id) == [1, 2, 3])
        #expect(parsed[0].answerAddresses == [Self.web].compactMap { $0 })
        #expect(parsed[1].answerAddresses == [IPAddress("192.0.2.1")].compactMap { $0 })
        #expect(parsed[2].answerAddresses == [IPAddress("192.0.2.1")].compactMap { $0 })
        await server.stop()
        await upstream.stop()
    }

    @Test("the server never forwards to its own address and port")
    func neverForwardsToItself() async throws {
        let first = try await Self.start(try Self.records())
        let port = first.port
        await first.stop()
        let exchanger = RecordingExchanger()
        let server = try await EmbeddedDNSServer.start(
            address: .v4(IPv4Address(0x7f00_0001)), port: port, records: try Self.records(),
            upstream: UpstreamResolvers(servers: [.init(address: .v4(IPv4Address(0x7f00_0001)), port: port)]),
            exchanger: exchanger, logger: dnsTestLogger)
        defer { Task { await server.stop() } }
        #expect(try await Self.ask(server, "elsewhere.test", .a).header.responseCode == .serverFailure)
        #expect(exchanger.queries.withLock { $0.isEmpty })
        await server.stop()
    }

    @Test("two queries on one TCP connection get two framed answers")
    func tcpTwoMessages() async throws {
        let server = try await Self.start(try Self.records())
        defer { Task { await server.stop() } }
        let replies = try await DNSTestClient.tcp(
            [try DNSMessage.queryBytes(id: 1, "web", .a), try DNSMessage.queryBytes(id: 2, "web", .aaaa)],
            host: "127.0.0.1", port: server.port, count: 2)
        let parsed = try replies.map { try DNSMessage(parsing: $0) }.sorted { $0.header.id < $1.header.id }
        #expect(parsed.map(\.header.id) == [1, 2])
        #expect(parsed.first?.answerAddresses == [Self.web].compactMap { $0 })
        #expect(parsed.last?.answerAddresses == [Self.web6].compactMap { $0 })
        await server.stop()
    }

    @Test("a TCP client that shuts down its sending side still gets its local and forwarded answers")
    func tcpHalfClose() async throws {
        let server = try await Self.start(
            try Self.records(), upstream: [.init(address: .v4(IPv4Address(0x7f00_0001)), port: 9)],
            exchanger: RecordingExchanger())
        defer { Task { await server.stop() } }
        let replies = try await DNSTestClient.tcp(
            [try DNSMessage.queryBytes(id: 1, "elsewhere.test", .txt), try DNSMessage.queryBytes(id: 2, "web", .a)],
            host: "127.0.0.1", port: server.port, count: 2, halfClose: true)
        let parsed = try replies.map { try DNSMessage(parsing: $0) }.sorted { $0.header.id < $1.header.id }
        #expect(parsed.first?.answers.first?.type == .txt)
        #expect(parsed.last?.answerAddresses == [Self.web].compactMap { $0 })
        await server.stop()
    }

    @Test("records replaced at runtime take effect on the next query")
    func recordsReplaced() async throws {
        let records = try Self.records()
        let server = try await Self.start(records)
        defer { Task { await server.stop() } }
        #expect(try await Self.ask(server, "web", .a).answerAddresses == [Self.web].compactMap { $0 })
        let moved = try #require(IPAddress("10.0.0.99"))
        records.replace(["web": [moved], "cache": [moved]])
        #expect(try await Self.ask(server, "web", .a).answerAddresses == [moved])
        #expect(try await Self.ask(server, "cache", .a).answerAddresses == [moved])
        #expect(try await Self.ask(server, "db", .a).header.responseCode == .serverFailure)
        await server.stop()
    }

    @Test("a UDP answer over 512 bytes is truncated unless EDNS0 allows more; TCP gets it whole")
    func udpTruncation() async throws {
        let records = DNSRecords()
        records.replace(["many": (0..<40).map { .v4(IPv4Address(0x0a00_0100 + $0)) }])
        let server = try await Self.start(records)
        defer { Task { await server.stop() } }
        let short = try await Self.ask(server, "many", .a)
        #expect(short.header.isTruncated)
        #expect(short.answers.isEmpty)
        var edns = DNSMessage.query(id: 9, name: try #require(DNSName("many")), type: .a)
        edns.additionals = [.init(name: .root, type: .opt, recordClass: 1232, ttl: 0, data: .raw([]))]
        let full = try DNSMessage(
            parsing: try #require(try await DNSTestClient.udp(edns.encoded(), host: "127.0.0.1", port: server.port)))
        #expect(!full.header.isTruncated)
        #expect(full.answers.count == 40)
        let tcp = try await DNSTestClient.tcp(
            [try DNSMessage.queryBytes(id: 3, "many", .a)], host: "127.0.0.1", port: server.port, count: 1)
        #expect(try DNSMessage(parsing: try #require(tcp.first)).answers.count == 40)
        await server.stop()
    }

    @Test("bad queries get FORMERR or NOTIMP, garbage is dropped, and the server keeps answering")
    func badQueries() async throws {
        let server = try await Self.start(try Self.records())
        defer { Task { await server.stop() } }
        var two = DNSMessage.query(id: 5, name: try #require(DNSName("web")), type: .a)
        two.questions.append(two.questions[0])
        let formerr = try DNSMessage(
            parsing: try #require(try await DNSTestClient.udp(two.encoded(), host: "127.0.0.1", port: server.port)))
        #expect(formerr.header.responseCode == .formatError)
        #expect(formerr.header.id == 5)
        var status = DNSMessage.query(id: 6, name: try #require(DNSName("web")), type: .a)
        status.header.opcode = 2
        let notimp = try DNSMessage(
            parsing: try #require(try await DNSTestClient.udp(status.encoded(), host: "127.0.0.1", port: server.port)))
        #expect(notimp.header.responseCode == .notImplemented)
        let loop = DNSMessageTests.hex("0007 0100 0001 0000 0000 0000 c00c 0001 0001")
        let malformed = try DNSMessage(
            parsing: try #require(try await DNSTestClient.udp(loop, host: "127.0.0.1", port: server.port)))
        #expect(malformed.header.responseCode == .formatError)
        #expect(try await DNSTestClient.udp([1, 2, 3], host: "127.0.0.1", port: server.port, timeout: 1) == nil)
        #expect(try await Self.ask(server, "web", .a).answerAddresses == [Self.web].compactMap { $0 })
        await server.stop()
    }
}
