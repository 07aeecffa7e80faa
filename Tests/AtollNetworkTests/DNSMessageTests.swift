import AtollCore
import Testing

@testable import AtollNetwork

struct DNSMessageTests {
    /// A query for "Example.com" A, ID 0x1234, RD, as dig would send it (without EDNS).
    static let exampleQuery: [UInt8] = hex(
        "1234 0100 0001 0000 0000 0000 07 4578616d706c65 03 636f6d 00 0001 0001")

    static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.filter(\.isHexDigit))
        return stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(digits[$0...$0 + 1]), radix: 16) }
    }

    @Test("a hand-written query parses into header and question")
    func parsesHandWrittenQuery() throws {
        let message = try DNSMessage(parsing: Self.exampleQuery)
        #expect(message.header.id == 0x1234)
        #expect(!message.header.isResponse)
        #expect(message.header.opcode == 0)
        #expect(message.header.recursionDesired)
        #expect(message.questions.count == 1)
        #expect(message.questions.first?.name.description == "Example.com.")
        #expect(message.questions.first?.name == DNSName("example.COM"))
        #expect(message.questions.first?.name.key == "example.com")
        #expect(message.questions.first?.type == .a)
        #expect(message.questions.first?.recordClass == 1)
        #expect(message.answers.isEmpty && message.additionals.isEmpty)
        #expect(message.encoded() == Self.exampleQuery)
    }

    @Test("a response compresses the owner names of its answers into pointers to the question")
    func responseCompressesNames() throws {
        let query = try DNSMessage(parsing: Self.exampleQuery)
        let name = try #require(DNSName("Example.com"))
        let answers = try ["10.0.0.2", "10.0.0.3"].map {
            DNSMessage.ResourceRecord(name: name, type: .a, ttl: 600, data: .address(try #require(IPAddress($0))))
        }
        let response = DNSMessage.response(to: query, answers: answers, authoritative: true)
        let bytes = response.encoded()
        let expected = Self.hex(
            """
            1234 8580 0001 0002 0000 0000 07 4578616d706c65 03 636f6d 00 0001 0001
            c00c 0001 0001 00000258 0004 0a000002
            c00c 0001 0001 00000258 0004 0a000003
            """)
        #expect(bytes == expected)
        let parsed = try DNSMessage(parsing: bytes)
        #expect(parsed == response)
        #expect(parsed.header.isAuthoritative && parsed.header.isResponse && parsed.header.recursionAvailable)
    }

    @Test("a PTR answer's target name is compressed against names already written")
    func ptrTargetCompressed() throws {
        let reverse = DNSName(reverseOf: .v4(IPv4Address(0x0a00_0002)))
        #expect(reverse.description == "2.0.0.10.in-addr.arpa.")
        let query = DNSMessage.query(id: 7, name: reverse, type: .ptr)
        let target = try #require(DNSName("web.arpa"))
        let response = DNSMessage.response(
            to: query, answers: [.init(name: reverse, type: .ptr, ttl: 600, data: .name(target))])
        let bytes = response.encoded()
        // "web", then a pointer to "arpa" inside the question name: offset 12 + "2", "0", "0"
        // (2 bytes each), "10" (3 bytes), "in-addr" (8 bytes) = 29.
        #expect(Array(bytes.suffix(6)) == [3, 0x77, 0x65, 0x62, 0xc0, 29])
        #expect(try DNSMessage(parsing: bytes) == response)
    }

    @Test("an oversized UDP response keeps only its question and sets TC")
    func truncation() throws {
        let query = try DNSMessage(parsing: Self.exampleQuery)
        let name = try #require(DNSName("example.com"))
        let answers = (0..<40).map {
            DNSMessage.ResourceRecord(
                name: name, type: .a, ttl: 600, data: .address(.v4(IPv4Address(0x0a00_0000 + $0))))
        }
        let response = DNSMessage.response(to: query, answers: answers)
        #expect(response.encoded().count > 512)
        let short = try DNSMessage(parsing: response.encoded(fitting: 512))
        #expect(short.header.isTruncated)
        #expect(short.answers.isEmpty)
        #expect(short.questions == query.questions)
        #expect(try DNSMessage(parsing: response.encoded(fitting: 4096)).answers.count == 40)
    }

    @Test("an EDNS0 OPT record gives the client's UDP size and is echoed in the response")
    func ednsSize() throws {
        var query = try DNSMessage(parsing: Self.exampleQuery)
        query.additionals = [.init(name: .root, type: .opt, recordClass: 1232, ttl: 0, data: .raw([]))]
        let parsed = try DNSMessage(parsing: query.encoded())
        #expect(parsed.ednsUDPPayloadSize == 1232)
        #expect(DNSMessage.response(to: parsed).ednsUDPPayloadSize == 4096)
    }

    @Test(
        "malformed messages are rejected without trapping",
        arguments: [
            ("short header", "1234 0100 0001"),
            ("pointer to itself", "1234 0100 0001 0000 0000 0000 c00c 0001 0001"),
            ("pointer forward", "1234 0100 0001 0000 0000 0000 c00e 01 61 00 0001 0001"),
            ("pointer loop through a label", "1234 0100 0001 0000 0000 0000 01 61 c00c 0001 0001"),
            ("pointer past the end", "1234 0100 0001 0000 0000 0000 c0"),
            ("truncated label", "1234 0100 0001 0000 0000 0000 05 616263"),
            ("missing root label", "1234 0100 0001 0000 0000 0000 03 616263"),
            (
                "label longer than 63 (0x40 is a reserved label type)",
                "1234 0100 0001 0000 0000 0000 40 61 00 0001 0001"
            ),
            ("extended label type 0x80", "1234 0100 0001 0000 0000 0000 80 61 00 0001 0001"),
            ("question without type and class", "1234 0100 0001 0000 0000 0000 01 61 00 00"),
            ("more questions than present", "1234 0100 0002 0000 0000 0000 01 61 00 0001 0001"),
            ("record data past the end", "1234 8100 0000 0001 0000 0000 00 0001 0001 00000001 0010 0a00"),
            ("A record of 3 bytes", "1234 8100 0000 0001 0000 0000 00 0001 0001 00000001 0003 0a0000"),
            ("PTR data length mismatch", "1234 8100 0000 0001 0000 0000 00 000c 0001 00000001 0004 01 61 00 00"),
        ])
    func rejectsMalformed(label: String, bytes: String) {
        #expect(throws: AtollError.self, "\(label)") { try DNSMessage(parsing: Self.hex(bytes)) }
    }

    @Test("a name longer than 255 bytes is rejected, on the wire and as text")
    func nameTooLong() {
        let label = [UInt8(63)] + [UInt8](repeating: 0x61, count: 63)
        let wire =
            Self.hex("1234 0100 0001 0000 0000 0000") + Array(repeating: label, count: 4).flatMap { $0 } + [
                0, 0, 1, 0, 1,
            ]
        #expect(throws: AtollError.self) { try DNSMessage(parsing: wire) }
        let fits =
            Self.hex("1234 0100 0001 0000 0000 0000") + Array(repeating: label, count: 3).flatMap { $0 }
            + [61] + [UInt8](repeating: 0x62, count: 61) + [0, 0, 1, 0, 1]
        #expect((try? DNSMessage(parsing: fits))?.questions.first?.name.wireLength == 255)
        #expect(DNSName(String(repeating: "a.", count: 128)) == nil)
        #expect(DNSName(String(repeating: "a", count: 64)) == nil)
        #expect(DNSName("a..b") == nil)
        #expect(DNSName(String(repeating: "a", count: 63)) != nil)
    }

    @Test("every prefix and every single-byte corruption of a response parses or throws")
    func fuzzedInputsNeverTrap() throws {
        let query = try DNSMessage(parsing: Self.exampleQuery)
        let name = try #require(DNSName("example.com"))
        let response = DNSMessage.response(
            to: query,
            answers: [
                .init(name: name, type: .a, ttl: 600, data: .address(.v4(IPv4Address(1)))),
                .init(name: name, type: .cname, ttl: 600, data: .name(name)),
            ]
        ).encoded()
        var outcomes = 0
        for end in 0...response.count {
            _ = try? DNSMessage(parsing: Array(response[0..<end]))
            outcomes += 1
        }
        for index in response.indices {
            for value: UInt8 in [0x00, 0x3f, 0x40, 0xc0, 0xff, response[index] ^ 0x80] {
                var corrupted = response
                corrupted[index] = value
                _ = try? DNSMessage(parsing: corrupted)
                outcomes += 1
            }
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let random = (0..<Int.random(in: 0..<80, using: &generator)).map { _ in UInt8.random(in: 0...255) }
            _ = try? DNSMessage(parsing: [0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1] + random)
            outcomes += 1
        }
        #expect(outcomes == response.count + 1 + response.count * 6 + 2000)
    }

    @Test("reverse names map to addresses and back, for IPv4 and IPv6")
    func reverseNames() throws {
        let v6 = try #require(IPAddress("fd00::2"))
        let name = DNSName(reverseOf: v6)
        #expect(name.description.hasPrefix("2.0.0.0.0.0.0.0"))
        #expect(name.description.hasSuffix(".0.0.d.f.ip6.arpa."))
        #expect(name.reverseAddress == v6)
        #expect(DNSName("3.2.1.10.IN-ADDR.ARPA")?.reverseAddress == IPAddress("10.1.2.3"))
        #expect(DNSName("1.10.in-addr.arpa")?.reverseAddress == nil)
        #expect(DNSName("256.2.1.10.in-addr.arpa")?.reverseAddress == nil)
        #expect(DNSName("01.2.1.10.in-addr.arpa")?.reverseAddress == nil)
    }
}
