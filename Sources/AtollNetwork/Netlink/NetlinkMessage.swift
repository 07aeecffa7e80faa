/// Builds the payload of a netlink message: fixed headers (ifinfomsg, rtmsg, …) and route
/// attributes (rtattr), each padded to 4 bytes. Integers in headers and attributes are in the
/// host's byte order, as the kernel reads them; addresses and ports go in as network-order bytes.
public struct NetlinkWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func append(_ value: UInt8) { bytes.append(value) }
    public mutating func append(_ value: UInt16) { withUnsafeBytes(of: value) { bytes += $0 } }
    public mutating func append(_ value: UInt32) { withUnsafeBytes(of: value) { bytes += $0 } }
    public mutating func append(_ value: Int32) { withUnsafeBytes(of: value) { bytes += $0 } }
    public mutating func append(contentsOf raw: [UInt8]) { bytes += raw }

    /// Zero bytes up to the next multiple of four.
    public mutating func align() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    /// One rtattr: length (header plus payload, unpadded), type, payload, padding.
    public mutating func attribute(_ type: UInt16, _ payload: [UInt8]) {
        align()
        append(UInt16(4 + payload.count))
        append(type)
        bytes += payload
        align()
    }

    public mutating func attribute(_ type: UInt16, uint8 value: UInt8) { attribute(type, [value]) }
    public mutating func attribute(_ type: UInt16, uint32 value: UInt32) {
        attribute(type, withUnsafeBytes(of: value) { Array($0) })
    }
    public mutating func attribute(_ type: UInt16, int32 value: Int32) {
        attribute(type, withUnsafeBytes(of: value) { Array($0) })
    }
    /// A 16-bit value in network byte order (UDP ports).
    public mutating func attribute(_ type: UInt16, bigEndian value: UInt16) {
        attribute(type, [UInt8(value >> 8), UInt8(value & 0xff)])
    }
    /// A NUL-terminated string.
    public mutating func attribute(_ type: UInt16, string: String) { attribute(type, Array(string.utf8) + [0]) }

    /// A nested attribute whose payload `body` writes; its length covers the padded children.
    public mutating func nested(_ type: UInt16, _ body: (inout NetlinkWriter) -> Void) {
        align()
        let start = bytes.count
        append(UInt16(0))
        append(type)
        body(&self)
        align()
        let length = UInt16(bytes.count - start)
        withUnsafeBytes(of: length) { raw in
            bytes[start] = raw[0]
            bytes[start + 1] = raw[1]
        }
    }
}

/// A netlink request without its sequence number: the message type, the flags and the payload
/// (fixed header plus attributes). `encoded(sequence:)` gives the bytes that go to the kernel.
public struct NetlinkMessage: Sendable, Equatable {
    public var type: UInt16
    public var flags: UInt16
    public var payload: [UInt8]

    public init(type: UInt16, flags: UInt16, payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.payload = payload
    }

    public init(type: UInt16, flags: UInt16, _ build: (inout NetlinkWriter) -> Void) {
        var writer = NetlinkWriter()
        build(&writer)
        writer.align()
        self.init(type: type, flags: flags, payload: writer.bytes)
    }

    /// Whether this is a dump request (NLM_F_DUMP), answered by a multi-part reply and NLMSG_DONE.
    public var isDump: Bool { flags & Netlink.dump == Netlink.dump }

    /// nlmsghdr (length, type, flags, sequence, port id 0 = to the kernel) followed by the payload.
    public func encoded(sequence: UInt32, portID: UInt32 = 0) -> [UInt8] {
        var writer = NetlinkWriter()
        writer.append(UInt32(Netlink.headerLength + payload.count))
        writer.append(type)
        writer.append(flags)
        writer.append(sequence)
        writer.append(portID)
        writer.append(contentsOf: payload)
        return writer.bytes
    }
}
