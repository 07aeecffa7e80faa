import AtollCore
import Synchronization
import Testing

@testable import AtollNetwork

/// Replies are parsed from bytes the kernel really sent (captured with a raw netlink socket), and
/// the request/reply exchange is driven through a fake transport.
struct NetlinkReplyTests {
    /// EEXIST for a duplicate link, with NETLINK_CAP_ACK: only the request's header is echoed.
    static let existsAck = netlinkHex(
        "240000000200000107000000ee360000efffffff38000000100005060700000000000000")
    /// EINVAL with an extended-ack message (NLM_F_CAPPED | NLM_F_ACK_TLVS).
    static let extendedAck = netlinkHex(
        """
        64000000020000030900000028370000eaffffff3800000010000506090000000000000
        03e00010052657175697265642061747472696275746573206e6f742070726f7669646564
        20746f20706572666f726d20746865206f7065726174696f6e000000
        """)
    /// An RTM_GETADDR dump: 127.0.0.1/8 and 10.1.2.3/24 on lo in one datagram, then NLMSG_DONE.
    static let addressDump = netlinkHex(
        """
        4c0000001400020008000000ee360000020880fe01000000080001007f000001080002007f000001070003006c6f00000800
        08008000000014000600ffffffffffffffff313f2b00313f2b004c0000001400020008000000ee360000021880000100000008
        0001000a010203080002000a010203070003006c6f0000080008008000000014000600ffffffffffffffff323f2b00323f2b00
        """)
    static let doneDatagram = netlinkHex("140000000300020008000000ee36000000000000")

    @Test func anErrorAckCarriesTheNegatedErrno() throws {
        let replies = try NetlinkParser.messages(in: Self.existsAck)
        #expect(replies.count == 1)
        #expect(replies[0].type == Netlink.error)
        #expect(replies[0].sequence == 7)
        let status = try #require(replies[0].errorStatus)
        #expect(status.errno == 17)
        #expect(status.message == nil)
    }

    @Test func anExtendedAckCarriesTheKernelsMessage() throws {
        let status = try #require(try NetlinkParser.messages(in: Self.extendedAck).first?.errorStatus)
        #expect(status.errno == 22)
        #expect(status.message == "Required attributes not provided to perform the operation")
    }

    @Test func aDumpDatagramHoldsSeveralMessages() throws {
        let replies = try NetlinkParser.messages(in: Self.addressDump)
        #expect(replies.map(\.type) == [RTM.newAddress, RTM.newAddress])
        #expect(replies.allSatisfy { $0.flags & Netlink.multi != 0 && $0.sequence == 8 })
        let addresses = replies.compactMap(AddressInfo.init)
        #expect(
            addresses == [
                AddressInfo(index: 1, address: .v4(IPv4Address(0x7f00_0001)), prefixLength: 8),
                AddressInfo(index: 1, address: .v4(IPv4Address(0x0a01_0203)), prefixLength: 24),
            ])
        #expect(try NetlinkParser.messages(in: Self.doneDatagram).map(\.type) == [Netlink.done])
    }

    @Test func aTruncatedMessageIsRejected() {
        #expect(throws: AtollError.self) { try NetlinkParser.messages(in: Array(Self.existsAck.dropLast(4))) }
    }

    @Test func attributesMaskTheNestedFlagAndStopAtBadLengths() {
        let attributes = NetlinkAttributes(netlinkHex("0800 0180 2a000000 ff00 0200"))
        #expect(attributes.uint32(1) == 42)
        #expect(attributes[2] == nil)
    }

    // MARK: exchanges through the fake transport

    @Test func createBridgeSendsTheRequestThenLooksUpTheIndex() throws {
        let fake = FakeNetlinkTransport { request, sequence in
            switch request.type {
            case RTM.newLink: return [fakeAck(sequence)]
            case RTM.getLink: return [fakeLink(index: 7, name: "atl-br0", sequence: sequence) + fakeAck(sequence)]
            default: return [fakeAck(sequence, errno: 95)]
            }
        }
        let netlink = RouteNetlink(transport: fake)
        #expect(try netlink.createBridge(name: "atl-br0", mtu: 1450) == 7)
        let sent = fake.sent
        #expect(sent.count == 2)
        #expect(sent.first == RouteRequest.createBridge(name: "atl-br0", mtu: 1450).encoded(sequence: 1))
        #expect(sent.last == RouteRequest.getLink(named: "atl-br0").encoded(sequence: 2))
    }

    @Test func repliesToAnotherSequenceNumberAreSkipped() throws {
        let fake = FakeNetlinkTransport { _, sequence in
            [
                fakeAck(sequence &- 1, errno: 17),
                fakeLink(index: 3, name: "stale", sequence: sequence &+ 5) + fakeAck(sequence),
            ]
        }
        let netlink = RouteNetlink(transport: fake)
        try netlink.setUp(index: 3)
        #expect(fake.sent.count == 1)
    }

    @Test func aDumpReadsEveryDatagramUntilDone() throws {
        let fake = FakeNetlinkTransport { _, sequence in
            [
                fakeLink(index: 1, name: "lo", sequence: sequence, flags: Netlink.multi),
                fakeLink(index: 2, name: "br0", sequence: sequence, flags: Netlink.multi, kind: "bridge")
                    + fakeLink(index: 3, name: "vx0", sequence: sequence, flags: Netlink.multi, kind: "vxlan", vni: 42),
                fakeDone(sequence),
            ]
        }
        let links = try RouteNetlink(transport: fake).links()
        #expect(links.map(\.name) == ["lo", "br0", "vx0"])
        #expect(links.map(\.kind) == [nil, "bridge", "vxlan"])
        #expect(links.last?.vxlanID == 42)
        #expect(links.first?.mtu == 1500)
    }

    @Test func anInterruptedDumpIsRunAgain() throws {
        let attempts = Mutex(0)
        let fake = FakeNetlinkTransport { _, sequence in
            let attempt = attempts.withLock {
                $0 += 1
                return $0
            }
            let flags = Netlink.multi | (attempt == 1 ? Netlink.dumpInterrupted : 0)
            return [
                fakeLink(index: Int32(attempt), name: "try\(attempt)", sequence: sequence, flags: flags),
                fakeDone(sequence),
            ]
        }
        let links = try RouteNetlink(transport: fake).links()
        #expect(links.map(\.name) == ["try2"])
        #expect(fake.sent.count == 2)
    }

    @Test func aDumpThatKeepsBeingInterruptedFails() {
        let fake = FakeNetlinkTransport { _, sequence in
            [
                fakeLink(index: 1, name: "lo", sequence: sequence, flags: Netlink.multi | Netlink.dumpInterrupted),
                fakeDone(sequence),
            ]
        }
        #expect(throws: AtollError.self) { try RouteNetlink(transport: fake).links() }
        #expect(fake.sent.count == RouteNetlink.dumpAttempts)
    }

    @Test func errnosMapToCodesAndMessagesNameTheObject() throws {
        let errnos = Mutex<[Int32]>([17, 19, 1, 22])
        let fake = FakeNetlinkTransport { _, sequence in
            [fakeAck(sequence, errno: errnos.withLock { $0.removeFirst() }, message: "Some detail")]
        }
        let netlink = RouteNetlink(transport: fake)
        let exists = #expect(throws: AtollError.self) { try netlink.createBridge(name: "atl-br0") }
        #expect(exists?.code == .alreadyExists)
        #expect(exists?.message == "creating bridge \"atl-br0\": file exists (Some detail)")
        let missing = #expect(throws: AtollError.self) { try netlink.deleteLink(index: 42) }
        #expect(missing?.code == .notFound)
        let denied = #expect(throws: AtollError.self) { try netlink.setUp(index: 1) }
        #expect(denied?.code == .permissionDenied)
        let invalid = #expect(throws: AtollError.self) { try netlink.setMTU(index: 1, mtu: 10) }
        #expect(invalid?.code == .internalError)
        #expect(invalid?.message.hasPrefix("setting mtu of link 1 to 10: invalid argument") == true)
    }

    @Test func deletingAMissingLinkByNameIsNotAnError() throws {
        let fake = FakeNetlinkTransport { _, sequence in [fakeAck(sequence, errno: 19)] }
        try RouteNetlink(transport: fake).deleteLink(named: "gone")
        #expect(fake.sent.count == 1)
    }

    @Test func linkNamesTheKernelWouldRefuseAreRejectedBeforeSending() throws {
        let fake = FakeNetlinkTransport { _, sequence in [fakeAck(sequence)] }
        let netlink = RouteNetlink(transport: fake)
        for name in ["", "a-name-of-16-chr", "a/b", "with space", "a:1", ".."] {
            let error = #expect(throws: AtollError.self) { try netlink.createBridge(name: name) }
            #expect(error?.code == .invalidArgument)
        }
        #expect(throws: AtollError.self) { try netlink.rename(index: 2, to: "way-too-long-for-linux") }
        #expect(fake.sent.isEmpty)
        _ = try? netlink.createBridge(name: "fifteen-bytes-x")
        #expect(fake.sent.count == 2)
    }

    @Test func aRouteWithoutDestinationGatewayOrFamilyIsRefused() {
        let fake = FakeNetlinkTransport { _, sequence in [fakeAck(sequence)] }
        let error = #expect(throws: AtollError.self) {
            try RouteNetlink(transport: fake).addRoute(destination: nil, gateway: nil, index: 1)
        }
        #expect(error?.code == .invalidArgument)
        #expect(fake.sent.isEmpty)
    }
}

/// A transport that answers each request with the datagrams `respond` builds for it.
final class FakeNetlinkTransport: NetlinkTransport, Sendable {
    private let respond: @Sendable (NetlinkReply, UInt32) -> [[UInt8]]
    private let state = Mutex<(sent: [[UInt8]], pending: [[UInt8]])>(([], []))

    init(_ respond: @escaping @Sendable (_ request: NetlinkReply, _ sequence: UInt32) -> [[UInt8]]) {
        self.respond = respond
    }

    var sent: [[UInt8]] { state.withLock { $0.sent } }

    func send(_ bytes: [UInt8]) throws {
        guard let request = try NetlinkParser.messages(in: bytes).first else { throw AtollError.internalError("empty") }
        let replies = respond(request, request.sequence)
        state.withLock {
            $0.sent.append(bytes)
            $0.pending += replies
        }
    }

    func receive() throws -> [UInt8] {
        try state.withLock {
            guard !$0.pending.isEmpty else { throw AtollError.internalError("fake transport: no reply queued") }
            return $0.pending.removeFirst()
        }
    }
}

/// An NLMSG_ERROR: an acknowledgement (errno 0) or a failure, capped, with an optional ext-ack text.
func fakeAck(_ sequence: UInt32, errno: Int32 = 0, message: String? = nil) -> [UInt8] {
    var payload = NetlinkWriter()
    payload.append(-errno)
    payload.append(contentsOf: [UInt8](repeating: 0, count: 16))
    if let message { payload.attribute(Netlink.errorAttributeMessage, string: message) }
    let flags = Netlink.capped | (message == nil ? 0 : Netlink.ackTLVs)
    return fakeReply(type: Netlink.error, flags: flags, sequence: sequence, payload: payload.bytes)
}

func fakeDone(_ sequence: UInt32) -> [UInt8] {
    fakeReply(type: Netlink.done, flags: Netlink.multi, sequence: sequence, payload: [0, 0, 0, 0])
}

/// An RTM_NEWLINK for a link, as a dump or a lookup returns it.
func fakeLink(
    index: Int32, name: String, sequence: UInt32, flags: UInt16 = 0, kind: String? = nil, vni: UInt32? = nil
) -> [UInt8] {
    var payload = NetlinkWriter()
    RouteRequest.ifinfomsg(&payload, index: index, flags: 1)
    payload.attribute(IFLA.name, string: name)
    payload.attribute(IFLA.mtu, uint32: 1500)
    if let kind {
        payload.nested(IFLA.linkInfo) {
            $0.attribute(IFLA.infoKind, string: kind)
            if let vni { $0.nested(IFLA.infoData) { $0.attribute(IFLA.vxlanID, uint32: vni) } }
        }
    }
    return fakeReply(type: RTM.newLink, flags: flags, sequence: sequence, payload: payload.bytes)
}

func fakeReply(type: UInt16, flags: UInt16, sequence: UInt32, payload: [UInt8]) -> [UInt8] {
    var bytes = NetlinkMessage(type: type, flags: flags, payload: payload).encoded(sequence: sequence, portID: 4242)
    while bytes.count % 4 != 0 { bytes.append(0) }
    return bytes
}
