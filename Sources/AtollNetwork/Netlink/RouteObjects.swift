/// A network interface as an RTM_NEWLINK message describes it.
public struct LinkInfo: Sendable, Hashable {
    public var index: Int32
    public var name: String
    /// The driver kind from IFLA_INFO_KIND: "bridge", "veth", "vxlan"; nil for physical and loopback.
    public var kind: String?
    /// The bridge (or other master) this link is enslaved to.
    public var masterIndex: Int32?
    public var mtu: Int
    /// IFF_UP: administratively up (the carrier may still be down).
    public var isUp: Bool
    public var mac: MACAddress?
    /// A VXLAN device's VNI.
    public var vxlanID: UInt32?
    /// The ifinfomsg flags (IFF_*).
    public var flags: UInt32

    public init(
        index: Int32, name: String, kind: String? = nil, masterIndex: Int32? = nil, mtu: Int, isUp: Bool,
        mac: MACAddress? = nil, vxlanID: UInt32? = nil, flags: UInt32 = 0
    ) {
        self.index = index
        self.name = name
        self.kind = kind
        self.masterIndex = masterIndex
        self.mtu = mtu
        self.isUp = isUp
        self.mac = mac
        self.vxlanID = vxlanID
        self.flags = flags
    }

    /// Decodes an RTM_NEWLINK payload; nil when it is not one.
    init?(_ reply: NetlinkReply) {
        let payload = reply.payload
        guard reply.type == RTM.newLink, payload.count >= IFLA.ifinfomsgLength,
            let index = payload.int32(at: 4), let flags = payload.uint32(at: 8)
        else { return nil }
        let attributes = NetlinkAttributes(payload[IFLA.ifinfomsgLength...])
        let linkInfo = attributes.nested(IFLA.linkInfo)
        let kind = linkInfo?.string(IFLA.infoKind)
        let master = attributes.int32(IFLA.master)
        self.init(
            index: index, name: attributes.string(IFLA.name) ?? "", kind: kind,
            masterIndex: master == 0 ? nil : master, mtu: Int(attributes.uint32(IFLA.mtu) ?? 0),
            isUp: flags & IFLA.flagUp != 0, mac: attributes[IFLA.address].flatMap { MACAddress(bytes: $0) },
            vxlanID: kind == "vxlan" ? linkInfo?.nested(IFLA.infoData)?.uint32(IFLA.vxlanID) : nil, flags: flags)
    }
}

/// An address assigned to an interface.
public struct AddressInfo: Sendable, Hashable {
    public var index: Int32
    public var address: IPAddress
    public var prefixLength: Int

    public init(index: Int32, address: IPAddress, prefixLength: Int) {
        self.index = index
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Decodes an RTM_NEWADDR payload (IFA_LOCAL, else IFA_ADDRESS).
    init?(_ reply: NetlinkReply) {
        let payload = reply.payload
        guard reply.type == RTM.newAddress, payload.count >= IFA.ifaddrmsgLength,
            let index = payload.uint32(at: 4)
        else { return nil }
        let attributes = NetlinkAttributes(payload[IFA.ifaddrmsgLength...])
        guard let bytes = attributes[IFA.local] ?? attributes[IFA.address], let address = IPAddress(bytes: bytes)
        else { return nil }
        self.init(index: Int32(bitPattern: index), address: address, prefixLength: Int(payload[1]))
    }
}

/// A route of the main table.
public struct RouteInfo: Sendable, Hashable {
    /// nil for a default route.
    public var destination: IPNetwork?
    public var gateway: IPAddress?
    /// The output interface.
    public var index: Int32?
    public var table: UInt32
    public var scope: UInt8
    /// Who installed it (RTPROT_*: 2 kernel, 3 boot, 4 static).
    public var routingProtocol: UInt8
    public var priority: UInt32?

    public init(
        destination: IPNetwork?, gateway: IPAddress?, index: Int32?, table: UInt32 = 254, scope: UInt8 = 0,
        routingProtocol: UInt8 = 3, priority: UInt32? = nil
    ) {
        self.destination = destination
        self.gateway = gateway
        self.index = index
        self.table = table
        self.scope = scope
        self.routingProtocol = routingProtocol
        self.priority = priority
    }

    public var isDefault: Bool { destination == nil }

    /// Decodes an RTM_NEWROUTE payload; cloned (cache) routes are skipped.
    init?(_ reply: NetlinkReply) {
        let payload = reply.payload
        guard reply.type == RTM.newRoute, payload.count >= RTA.rtmsgLength, let flags = payload.uint32(at: 8),
            flags & RTA.flagCloned == 0
        else { return nil }
        let family = payload[0]
        let destinationLength = Int(payload[1])
        let attributes = NetlinkAttributes(payload[RTA.rtmsgLength...])
        var destination: IPNetwork?
        if destinationLength > 0 {
            guard let bytes = attributes[RTA.destination], let address = IPAddress(bytes: bytes) else { return nil }
            destination = IPNetwork(address: address, prefixLength: destinationLength)
        }
        guard family == AF.inet || family == AF.inet6 else { return nil }
        self.init(
            destination: destination, gateway: attributes[RTA.gateway].flatMap { IPAddress(bytes: $0) },
            index: attributes.int32(RTA.outputInterface), table: attributes.uint32(RTA.table) ?? UInt32(payload[4]),
            scope: payload[6], routingProtocol: payload[5], priority: attributes.uint32(RTA.priority))
    }
}

/// An ARP or NDP entry.
public struct NeighbourInfo: Sendable, Hashable {
    public var index: Int32
    public var address: IPAddress
    public var mac: MACAddress?
    /// NUD_* state bits (0x80 permanent).
    public var state: UInt16

    public init(index: Int32, address: IPAddress, mac: MACAddress?, state: UInt16) {
        self.index = index
        self.address = address
        self.mac = mac
        self.state = state
    }

    public var isPermanent: Bool { state & NDA.statePermanent != 0 }

    init?(_ reply: NetlinkReply) {
        let payload = reply.payload
        guard reply.type == RTM.newNeighbour, payload.count >= NDA.ndmsgLength,
            payload[0] == AF.inet || payload[0] == AF.inet6, let index = payload.int32(at: 4),
            let state = payload.uint16(at: 8)
        else { return nil }
        let attributes = NetlinkAttributes(payload[NDA.ndmsgLength...])
        guard let bytes = attributes[NDA.destination], let address = IPAddress(bytes: bytes) else { return nil }
        self.init(
            index: index, address: address, mac: attributes[NDA.linkLayerAddress].flatMap { MACAddress(bytes: $0) },
            state: state)
    }
}

/// A bridge or VXLAN forwarding-database entry: frames for `mac` go to the VTEP `destination`.
public struct FDBEntry: Sendable, Hashable {
    public var index: Int32
    public var mac: MACAddress
    /// The remote VTEP (VXLAN); nil for an entry of a bridge port.
    public var destination: IPAddress?
    public var state: UInt16
    /// NTF_* flags (0x02 self, 0x04 master).
    public var flags: UInt8

    public init(index: Int32, mac: MACAddress, destination: IPAddress?, state: UInt16 = 0x80, flags: UInt8 = 0x02) {
        self.index = index
        self.mac = mac
        self.destination = destination
        self.state = state
        self.flags = flags
    }

    init?(_ reply: NetlinkReply) {
        let payload = reply.payload
        guard reply.type == RTM.newNeighbour, payload.count >= NDA.ndmsgLength, payload[0] == AF.bridge,
            let index = payload.int32(at: 4), let state = payload.uint16(at: 8)
        else { return nil }
        let attributes = NetlinkAttributes(payload[NDA.ndmsgLength...])
        guard let mac = attributes[NDA.linkLayerAddress].flatMap({ MACAddress(bytes: $0) }) else { return nil }
        self.init(
            index: index, mac: mac, destination: attributes[NDA.destination].flatMap { IPAddress(bytes: $0) },
            state: state, flags: payload[10])
    }
}
