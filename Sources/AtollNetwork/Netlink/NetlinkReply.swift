import AtollCore

/// One message of a netlink reply datagram.
public struct NetlinkReply: Sendable, Equatable {
    public var type: UInt16
    public var flags: UInt16
    public var sequence: UInt32
    public var portID: UInt32
    /// Everything after the 16-byte nlmsghdr, up to nlmsg_len.
    public var payload: [UInt8]

    public init(type: UInt16, flags: UInt16, sequence: UInt32, portID: UInt32, payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.sequence = sequence
        self.portID = portID
        self.payload = payload
    }

    /// The errno of an NLMSG_ERROR (0 is an acknowledgement) and the kernel's extended-ack text.
    public var errorStatus: (errno: Int32, message: String?)? {
        guard type == Netlink.error, let error = payload.int32(at: 0) else { return nil }
        // With NLM_F_CAPPED only the request's header follows; otherwise the whole request.
        var tlvOffset = 4 + Netlink.headerLength
        if flags & Netlink.capped == 0, let requestLength = payload.uint32(at: 4) {
            tlvOffset = 4 + Int(requestLength)
        }
        var message: String?
        if flags & Netlink.ackTLVs != 0, tlvOffset <= payload.count {
            let attributes = NetlinkAttributes(payload[tlvOffset...])
            message = attributes.string(Netlink.errorAttributeMessage)
        }
        return (-error, message)
    }
}

/// Splits reply datagrams into messages and reads route attributes.
public enum NetlinkParser {
    /// The messages of one datagram, each checked against the datagram's bounds.
    public static func messages(in datagram: [UInt8]) throws(AtollError) -> [NetlinkReply] {
        var replies: [NetlinkReply] = []
        var offset = 0
        while offset + Netlink.headerLength <= datagram.count {
            guard let length = datagram.uint32(at: offset).map(Int.init),
                length >= Netlink.headerLength, offset + length <= datagram.count,
                let type = datagram.uint16(at: offset + 4), let flags = datagram.uint16(at: offset + 6),
                let sequence = datagram.uint32(at: offset + 8), let portID = datagram.uint32(at: offset + 12)
            else {
                throw AtollError.dataLoss(
                    "malformed netlink message at offset \(offset) of a \(datagram.count)-byte reply")
            }
            let payload = Array(datagram[(offset + Netlink.headerLength)..<(offset + length)])
            replies.append(NetlinkReply(type: type, flags: flags, sequence: sequence, portID: portID, payload: payload))
            offset += (length + 3) & ~3
        }
        return replies
    }
}

/// The route attributes (rtattr) of a payload, by type. The nested and byte-order flag bits of a
/// type are masked off; when a type repeats, the first occurrence wins.
public struct NetlinkAttributes: Sendable {
    public private(set) var all: [(type: UInt16, value: [UInt8])] = []

    public init(_ bytes: some Collection<UInt8>) {
        let bytes = Array(bytes)
        var offset = 0
        while offset + 4 <= bytes.count {
            guard let length = bytes.uint16(at: offset).map(Int.init), let type = bytes.uint16(at: offset + 2),
                length >= 4, offset + length <= bytes.count
            else { break }
            all.append((type & 0x3fff, Array(bytes[(offset + 4)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
    }

    public subscript(type: UInt16) -> [UInt8]? { all.first { $0.type == type }?.value }

    public func uint8(_ type: UInt16) -> UInt8? { self[type]?.first }
    public func uint16(_ type: UInt16) -> UInt16? { self[type]?.uint16(at: 0) }
    public func uint32(_ type: UInt16) -> UInt32? { self[type]?.uint32(at: 0) }
    public func int32(_ type: UInt16) -> Int32? { self[type]?.int32(at: 0) }

    /// A string attribute, without its terminating NUL.
    public func string(_ type: UInt16) -> String? {
        guard let value = self[type] else { return nil }
        return String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
    }

    public func nested(_ type: UInt16) -> NetlinkAttributes? { self[type].map { NetlinkAttributes($0) } }
}

extension Array where Element == UInt8 {
    /// A native-endian integer at `offset`, or nil when the array is too short.
    func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T? {
        guard offset >= 0, offset + MemoryLayout<T>.size <= count else { return nil }
        return withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }
    func uint16(at offset: Int) -> UInt16? { load(UInt16.self, at: offset) }
    func uint32(at offset: Int) -> UInt32? { load(UInt32.self, at: offset) }
    func int32(at offset: Int) -> Int32? { load(Int32.self, at: offset) }
}
