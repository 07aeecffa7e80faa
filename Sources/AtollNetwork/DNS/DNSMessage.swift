import AtollCore

/// A resource record type (RFC 1035 and successors).
public struct DNSRecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = DNSRecordType(rawValue: 1)
    public static let ns = DNSRecordType(rawValue: 2)
    public static let cname = DNSRecordType(rawValue: 5)
    public static let soa = DNSRecordType(rawValue: 6)
    public static let ptr = DNSRecordType(rawValue: 12)
    public static let mx = DNSRecordType(rawValue: 15)
    public static let txt = DNSRecordType(rawValue: 16)
    public static let aaaa = DNSRecordType(rawValue: 28)
    public static let srv = DNSRecordType(rawValue: 33)
    /// The EDNS0 pseudo-record (RFC 6891).
    public static let opt = DNSRecordType(rawValue: 41)
    public static let any = DNSRecordType(rawValue: 255)

    public var description: String {
        let names: [UInt16: String] = [
            1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 41: "OPT",
            255: "ANY",
        ]
        return names[rawValue] ?? "TYPE\(rawValue)"
    }
}

/// A response code (the low four bits of the header flags).
public struct DNSResponseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0f }

    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    public static let nameError = DNSResponseCode(rawValue: 3)
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)

    public var description: String {
        ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"].dropFirst(Int(rawValue)).first
            ?? "RCODE\(rawValue)"
    }
}

/// A DNS message: header, questions and the three record sections. A pure codec: parsing never
/// traps on malformed input (it throws), and encoding compresses names.
public struct DNSMessage: Hashable, Sendable {
    /// The fixed 12-byte header without the section counts (those come from the sections).
    public struct Header: Hashable, Sendable {
        public var id: UInt16
        /// QR, opcode, AA, TC, RD, RA, Z, AD, CD and RCODE as on the wire.
        public var flags: UInt16

        public init(id: UInt16, flags: UInt16 = 0) {
            self.id = id
            self.flags = flags
        }

        /// Reads the ID and flags of a message of at least 12 bytes; nil if shorter.
        public init?(parsing bytes: [UInt8]) {
            guard bytes.count >= 12 else { return nil }
            id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
            flags = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        }

        public var isResponse: Bool {
            get { flag(15) }
            set { setFlag(15, newValue) }
        }
        /// 0 is QUERY.
        public var opcode: UInt8 {
            get { UInt8(truncatingIfNeeded: flags >> 11) & 0x0f }
            set { flags = flags & ~(0x0f << 11) | UInt16(newValue & 0x0f) << 11 }
        }
        public var isAuthoritative: Bool {
            get { flag(10) }
            set { setFlag(10, newValue) }
        }
        public var isTruncated: Bool {
            get { flag(9) }
            set { setFlag(9, newValue) }
        }
        public var recursionDesired: Bool {
            get { flag(8) }
            set { setFlag(8, newValue) }
        }
        public var recursionAvailable: Bool {
            get { flag(7) }
            set { setFlag(7, newValue) }
        }
        public var checkingDisabled: Bool {
            get { flag(4) }
            set { setFlag(4, newValue) }
        }
        public var responseCode: DNSResponseCode {
            get { DNSResponseCode(rawValue: UInt8(truncatingIfNeeded: flags)) }
            set { flags = flags & ~0x0f | UInt16(newValue.rawValue) }
        }

        private func flag(_ bit: UInt16) -> Bool { flags & (1 << bit) != 0 }
        private mutating func setFlag(_ bit: UInt16, _ on: Bool) {
            flags = on ? flags | (1 << bit) : flags & ~(1 << bit)
        }
    }

    public struct Question: Hashable, Sendable {
        public var name: DNSName
        public var type: DNSRecordType
        /// 1 is IN.
        public var recordClass: UInt16

        public init(name: DNSName, type: DNSRecordType, recordClass: UInt16 = 1) {
            self.name = name
            self.type = type
            self.recordClass = recordClass
        }
    }

    /// Record data: addresses and names decoded, everything else kept as raw bytes.
    public enum RecordData: Hashable, Sendable {
        /// A (4 bytes) or AAAA (16 bytes).
        case address(IPAddress)
        /// PTR, CNAME and NS: one domain name, compressed on encoding.
        case name(DNSName)
        /// Any other type, as it was on the wire. Raw data that holds compression pointers (MX,
        /// SOA, SRV from some servers) is only meaningful inside the message it came from.
        case raw([UInt8])
    }

    public struct ResourceRecord: Hashable, Sendable {
        public var name: DNSName
        public var type: DNSRecordType
        public var recordClass: UInt16
        public var ttl: UInt32
        public var data: RecordData

        public init(name: DNSName, type: DNSRecordType, recordClass: UInt16 = 1, ttl: UInt32, data: RecordData) {
            self.name = name
            self.type = type
            self.recordClass = recordClass
            self.ttl = ttl
            self.data = data
        }
    }

    public var header: Header
    public var questions: [Question]
    public var answers: [ResourceRecord]
    public var authorities: [ResourceRecord]
    public var additionals: [ResourceRecord]

    public init(
        header: Header, questions: [Question] = [], answers: [ResourceRecord] = [],
        authorities: [ResourceRecord] = [], additionals: [ResourceRecord] = []
    ) {
        self.header = header
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    /// A query for one name.
    public static func query(id: UInt16, name: DNSName, type: DNSRecordType, recursionDesired: Bool = true)
        -> DNSMessage
    {
        var header = Header(id: id)
        header.recursionDesired = recursionDesired
        return DNSMessage(header: header, questions: [Question(name: name, type: type)])
    }

    /// The UDP payload size the sender of this message advertises in an EDNS0 OPT record, if any.
    public var ednsUDPPayloadSize: Int? {
        additionals.first { $0.type == .opt }.map { Int($0.recordClass) }
    }

    /// A response to `query`: same ID, opcode, RD and CD bits and question, QR set, with the
    /// given code and answers. Echoes an OPT record (advertising 4096 bytes) if the query had one.
    public static func response(
        to query: DNSMessage, code: DNSResponseCode = .noError, answers: [ResourceRecord] = [],
        authoritative: Bool = false, recursionAvailable: Bool = true
    ) -> DNSMessage {
        var header = Header(id: query.header.id)
        header.isResponse = true
        header.opcode = query.header.opcode
        header.recursionDesired = query.header.recursionDesired
        header.checkingDisabled = query.header.checkingDisabled
        header.isAuthoritative = authoritative
        header.recursionAvailable = recursionAvailable
        header.responseCode = code
        var response = DNSMessage(header: header, questions: query.questions, answers: answers)
        if query.ednsUDPPayloadSize != nil {
            response.additionals = [ResourceRecord(name: .root, type: .opt, recordClass: 4096, ttl: 0, data: .raw([]))]
        }
        return response
    }

    /// An error response built from the header alone, for queries too broken to parse further
    /// (no question section).
    public static func errorResponse(to header: Header, code: DNSResponseCode) -> DNSMessage {
        var reply = Header(id: header.id)
        reply.isResponse = true
        reply.opcode = header.opcode
        reply.recursionDesired = header.recursionDesired
        reply.recursionAvailable = true
        reply.responseCode = code
        return DNSMessage(header: reply)
    }
}

// MARK: - Parsing

extension DNSMessage {
    /// Parses a message. With `questionsOnly`, stops after the question section (for checking a
    /// reply that is passed on verbatim). Throws `AtollError.invalidArgument` on anything malformed:
    /// truncation, labels over 63 bytes, names over 255, compression pointers that do not point
    /// strictly backwards, reserved label types.
    public init(parsing bytes: [UInt8], questionsOnly: Bool = false) throws(AtollError) {
        var reader = DNSReader(bytes: bytes)
        let id = try reader.readUInt16()
        let flags = try reader.readUInt16()
        let counts = [
            try reader.readUInt16(), try reader.readUInt16(), try reader.readUInt16(), try reader.readUInt16(),
        ]
        header = Header(id: id, flags: flags)
        questions = []
        answers = []
        authorities = []
        additionals = []
        for _ in 0..<counts[0] {
            let name = try reader.readName()
            let type = DNSRecordType(rawValue: try reader.readUInt16())
            questions.append(Question(name: name, type: type, recordClass: try reader.readUInt16()))
        }
        guard !questionsOnly else { return }
        for _ in 0..<counts[1] { answers.append(try reader.readRecord()) }
        for _ in 0..<counts[2] { authorities.append(try reader.readRecord()) }
        for _ in 0..<counts[3] { additionals.append(try reader.readRecord()) }
    }
}

/// A bounds-checked cursor over an untrusted message.
private struct DNSReader {
    let bytes: [UInt8]
    var offset = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    static func malformed(_ what: String) -> AtollError { .invalidArgument("malformed dns message: \(what)") }

    mutating func readUInt8() throws(AtollError) -> UInt8 {
        guard offset < bytes.count else { throw Self.malformed("truncated at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func readUInt16() throws(AtollError) -> UInt16 {
        UInt16(try readUInt8()) << 8 | UInt16(try readUInt8())
    }

    mutating func readUInt32() throws(AtollError) -> UInt32 {
        UInt32(try readUInt16()) << 16 | UInt32(try readUInt16())
    }

    mutating func readBytes(_ count: Int) throws(AtollError) -> [UInt8] {
        guard count <= bytes.count - offset else { throw Self.malformed("truncated at byte \(offset)") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Reads a possibly compressed name. Every pointer must point before the start of the run of
    /// labels it ends, so the walk strictly moves backwards and always terminates.
    mutating func readName() throws(AtollError) -> DNSName {
        var labels: [[UInt8]] = []
        var wireLength = 1
        var position = offset
        var runStart = offset
        var resumeAt: Int?
        while true {
            guard position < bytes.count else { throw Self.malformed("name runs past the end") }
            let length = Int(bytes[position])
            switch length & 0xc0 {
            case 0x00:
                if length == 0 {
                    offset = resumeAt ?? position + 1
                    guard let name = DNSName(labels: labels) else { throw Self.malformed("invalid name") }
                    return name
                }
                guard length <= bytes.count - position - 1 else { throw Self.malformed("label runs past the end") }
                wireLength += 1 + length
                guard wireLength <= 255 else { throw Self.malformed("name longer than 255 bytes") }
                labels.append(Array(bytes[position + 1..<position + 1 + length]))
                position += 1 + length
            case 0xc0:
                guard position + 1 < bytes.count else { throw Self.malformed("pointer runs past the end") }
                let target = (length & 0x3f) << 8 | Int(bytes[position + 1])
                guard target < runStart else { throw Self.malformed("compression pointer does not point backwards") }
                if resumeAt == nil { resumeAt = position + 2 }
                position = target
                runStart = target
            default:
                throw Self.malformed("reserved label type \(length >> 6)")
            }
        }
    }

    mutating func readRecord() throws(AtollError) -> DNSMessage.ResourceRecord {
        let name = try readName()
        let type = DNSRecordType(rawValue: try readUInt16())
        let recordClass = try readUInt16()
        let ttl = try readUInt32()
        let length = Int(try readUInt16())
        guard length <= bytes.count - offset else { throw Self.malformed("record data runs past the end") }
        let end = offset + length
        let data: DNSMessage.RecordData
        switch type {
        case .a, .aaaa:
            guard length == (type == .a ? 4 : 16), let address = IPAddress(bytes: bytes[offset..<end]) else {
                throw Self.malformed("\(type) record with \(length) bytes of data")
            }
            data = .address(address)
            offset = end
        case .ptr, .cname, .ns:
            let target = try readName()
            guard offset == end else { throw Self.malformed("\(type) record data length mismatch") }
            data = .name(target)
        default:
            data = .raw(try readBytes(length))
        }
        return DNSMessage.ResourceRecord(name: name, type: type, recordClass: recordClass, ttl: ttl, data: data)
    }
}

// MARK: - Encoding

extension DNSMessage {
    /// The message on the wire, names compressed.
    public func encoded() -> [UInt8] {
        var writer = DNSWriter()
        writer.writeUInt16(header.id)
        writer.writeUInt16(header.flags)
        for count in [questions.count, answers.count, authorities.count, additionals.count] {
            writer.writeUInt16(UInt16(clamping: count))
        }
        for question in questions.prefix(Int(UInt16.max)) {
            writer.writeName(question.name)
            writer.writeUInt16(question.type.rawValue)
            writer.writeUInt16(question.recordClass)
        }
        for record in [answers, authorities, additionals].flatMap({ $0.prefix(Int(UInt16.max)) }) {
            writer.writeRecord(record)
        }
        return writer.bytes
    }

    /// The message encoded to fit `limit` bytes (a UDP response): if it does not, the records are
    /// dropped (an OPT record is kept) and TC is set, so the client retries over TCP.
    public func encoded(fitting limit: Int) -> [UInt8] {
        let bytes = encoded()
        guard bytes.count > limit else { return bytes }
        var truncated = DNSMessage(header: header, questions: questions)
        truncated.header.isTruncated = true
        truncated.additionals = additionals.filter { $0.type == .opt }
        return truncated.encoded()
    }
}

private struct DNSWriter {
    var bytes: [UInt8] = []
    /// Offsets of names already written, keyed by their lower-cased labels.
    var offsets: [[[UInt8]]: Int] = [:]

    mutating func writeUInt16(_ value: UInt16) {
        bytes += [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    mutating func writeName(_ name: DNSName) {
        let lower = name.lowercasedLabels
        for index in lower.indices {
            let suffix = Array(lower[index...])
            if let offset = offsets[suffix] {
                writeUInt16(0xc000 | UInt16(offset))
                return
            }
            if bytes.count < 0x4000 { offsets[suffix] = bytes.count }
            bytes.append(UInt8(name.labels[index].count))
            bytes += name.labels[index]
        }
        bytes.append(0)
    }

    mutating func writeRecord(_ record: DNSMessage.ResourceRecord) {
        writeName(record.name)
        writeUInt16(record.type.rawValue)
        writeUInt16(record.recordClass)
        writeUInt16(UInt16(truncatingIfNeeded: record.ttl >> 16))
        writeUInt16(UInt16(truncatingIfNeeded: record.ttl))
        let lengthAt = bytes.count
        writeUInt16(0)
        switch record.data {
        case .address(let address): bytes += address.bytes
        case .name(let name): writeName(name)
        case .raw(let raw): bytes += raw.prefix(Int(UInt16.max))
        }
        let length = UInt16(clamping: bytes.count - lengthAt - 2)
        bytes[lengthAt] = UInt8(truncatingIfNeeded: length >> 8)
        bytes[lengthAt + 1] = UInt8(truncatingIfNeeded: length)
    }
}
