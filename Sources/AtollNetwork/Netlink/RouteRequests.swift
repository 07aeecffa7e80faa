/// The rtnetlink requests `RouteNetlink` sends, built without any I/O so that tests can compare
/// their exact bytes. Every request that changes something asks for an acknowledgement.
public enum RouteRequest {
    static let change = Netlink.request | Netlink.ack
    static let createNew = Netlink.request | Netlink.ack | Netlink.create | Netlink.exclusive
    static let dump = Netlink.request | Netlink.dump

    /// struct ifinfomsg: family, pad, type, index, flags, change.
    static func ifinfomsg(_ writer: inout NetlinkWriter, index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) {
        writer.append(AF.unspecified)
        writer.append(UInt8(0))
        writer.append(UInt16(0))
        writer.append(index)
        writer.append(flags)
        writer.append(change)
    }

    /// struct ifaddrmsg: family, prefix length, flags, scope, index.
    static func ifaddrmsg(_ writer: inout NetlinkWriter, family: UInt8, prefixLength: Int, flags: UInt8, index: Int32) {
        writer.append(family)
        writer.append(UInt8(clamping: prefixLength))
        writer.append(flags)
        writer.append(RTA.scopeUniverse)
        writer.append(UInt32(bitPattern: index))
    }

    /// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    static func rtmsg(
        _ writer: inout NetlinkWriter, family: UInt8, destinationLength: Int = 0, table: UInt8 = 0,
        protocol: UInt8 = 0, scope: UInt8 = 0, type: UInt8 = 0
    ) {
        writer.append(family)
        writer.append(UInt8(clamping: destinationLength))
        writer.append(UInt8(0))
        writer.append(UInt8(0))
        writer.append(table)
        writer.append(`protocol`)
        writer.append(scope)
        writer.append(type)
        writer.append(UInt32(0))
    }

    /// struct ndmsg: family, pad, pad, ifindex, state, flags, type.
    static func ndmsg(
        _ writer: inout NetlinkWriter, family: UInt8, index: Int32 = 0, state: UInt16 = 0, flags: UInt8 = 0
    ) {
        writer.append(family)
        writer.append(UInt8(0))
        writer.append(UInt16(0))
        writer.append(index)
        writer.append(state)
        writer.append(flags)
        writer.append(UInt8(0))
    }

    // MARK: links

    public static func getLink(named name: String) -> NetlinkMessage {
        NetlinkMessage(type: RTM.getLink, flags: change) {
            ifinfomsg(&$0)
            $0.attribute(IFLA.name, string: name)
        }
    }

    public static func dumpLinks() -> NetlinkMessage {
        NetlinkMessage(type: RTM.getLink, flags: dump) { ifinfomsg(&$0) }
    }

    /// `ip link add NAME [mtu MTU] type bridge`.
    public static func createBridge(name: String, mtu: Int?) -> NetlinkMessage {
        NetlinkMessage(type: RTM.newLink, flags: createNew) {
            ifinfomsg(&$0)
            $0.attribute(IFLA.name, string: name)
            if let mtu { $0.attribute(IFLA.mtu, uint32: UInt32(clamping: mtu)) }
            $0.nested(IFLA.linkInfo) { $0.attribute(IFLA.infoKind, string: "bridge") }
        }
    }

    /// `ip link add NAME [mtu MTU] [master M] type veth peer name PEER [mtu MTU] [address MAC] netns FD`:
    /// the peer is born inside the namespace open at `peerNamespaceFD`.
    public static func createVeth(
        name: String, master: Int32?, mtu: Int?, peerName: String, peerNamespaceFD: Int32, peerMAC: MACAddress?
    ) -> NetlinkMessage {
        NetlinkMessage(type: RTM.newLink, flags: createNew) {
            ifinfomsg(&$0)
            $0.attribute(IFLA.name, string: name)
            if let mtu { $0.attribute(IFLA.mtu, uint32: UInt32(clamping: mtu)) }
            if let master { $0.attribute(IFLA.master, int32: master) }
            $0.nested(IFLA.linkInfo) {
                $0.attribute(IFLA.infoKind, string: "veth")
                $0.nested(IFLA.infoData) {
                    $0.nested(IFLA.vethPeer) {
                        ifinfomsg(&$0)
                        $0.attribute(IFLA.name, string: peerName)
                        if let mtu { $0.attribute(IFLA.mtu, uint32: UInt32(clamping: mtu)) }
                        if let peerMAC { $0.attribute(IFLA.address, peerMAC.bytes) }
                        $0.attribute(IFLA.netNSFD, int32: peerNamespaceFD)
                    }
                }
            }
        }
    }

    /// `ip link add NAME [mtu MTU] [master M] type vxlan id VNI [local ADDR] [dev UNDERLAY] dstport PORT nolearning`.
    public static func createVXLAN(
        name: String, vni: UInt32, local: IPAddress?, underlay: Int32?, port: UInt16, mtu: Int?, master: Int32?
    ) -> NetlinkMessage {
        NetlinkMessage(type: RTM.newLink, flags: createNew) {
            ifinfomsg(&$0)
            $0.attribute(IFLA.name, string: name)
            if let mtu { $0.attribute(IFLA.mtu, uint32: UInt32(clamping: mtu)) }
            if let master { $0.attribute(IFLA.master, int32: master) }
            $0.nested(IFLA.linkInfo) {
                $0.attribute(IFLA.infoKind, string: "vxlan")
                $0.nested(IFLA.infoData) {
                    $0.attribute(IFLA.vxlanID, uint32: vni)
                    if let local {
                        $0.attribute(local.isIPv4 ? IFLA.vxlanLocal : IFLA.vxlanLocal6, local.bytes)
                    }
                    if let underlay { $0.attribute(IFLA.vxlanLink, int32: underlay) }
                    $0.attribute(IFLA.vxlanPort, bigEndian: port)
                    $0.attribute(IFLA.vxlanLearning, uint8: 0)
                }
            }
        }
    }

    public static func deleteLink(index: Int32) -> NetlinkMessage {
        NetlinkMessage(type: RTM.delLink, flags: change) { ifinfomsg(&$0, index: index) }
    }

    public static func deleteLink(named name: String) -> NetlinkMessage {
        NetlinkMessage(type: RTM.delLink, flags: change) {
            ifinfomsg(&$0)
            $0.attribute(IFLA.name, string: name)
        }
    }

    /// `ip link set dev INDEX up|down`.
    public static func setLink(index: Int32, up: Bool) -> NetlinkMessage {
        NetlinkMessage(type: RTM.newLink, flags: change) {
            ifinfomsg(&$0, index: index, flags: up ? IFLA.flagUp : 0, change: IFLA.flagUp)
        }
    }

    /// `ip link set dev INDEX` with one attribute (master, mtu, address, name, netns).
    public static func setLink(index: Int32, _ attributes: (inout NetlinkWriter) -> Void) -> NetlinkMessage {
        NetlinkMessage(type: RTM.newLink, flags: change) {
            ifinfomsg(&$0, index: index)
            attributes(&$0)
        }
    }

    public static func setMaster(index: Int32, master: Int32?) -> NetlinkMessage {
        setLink(index: index) { $0.attribute(IFLA.master, int32: master ?? 0) }
    }

    public static func setMTU(index: Int32, mtu: Int) -> NetlinkMessage {
        setLink(index: index) { $0.attribute(IFLA.mtu, uint32: UInt32(clamping: mtu)) }
    }

    public static func setMAC(index: Int32, mac: MACAddress) -> NetlinkMessage {
        setLink(index: index) { $0.attribute(IFLA.address, mac.bytes) }
    }

    public static func rename(index: Int32, to name: String) -> NetlinkMessage {
        setLink(index: index) { $0.attribute(IFLA.name, string: name) }
    }

    public static func move(index: Int32, toNamespaceFD fd: Int32) -> NetlinkMessage {
        setLink(index: index) { $0.attribute(IFLA.netNSFD, int32: fd) }
    }

    // MARK: addresses

    /// `ip addr add ADDRESS/PREFIX [brd +] dev INDEX`; IPv4 gets its broadcast address (below /31),
    /// IPv6 skips duplicate address detection (IFA_F_NODAD) so the address is usable at once.
    public static func addAddress(_ address: IPAddress, prefixLength: Int, index: Int32) -> NetlinkMessage {
        NetlinkMessage(type: RTM.newAddress, flags: createNew) {
            ifaddrmsg(
                &$0, family: address.family, prefixLength: prefixLength,
                flags: address.isIPv4 ? 0 : IFA.flagNoDAD, index: index)
            $0.attribute(IFA.local, address.bytes)
            $0.attribute(IFA.address, address.bytes)
            if case .v4(let v4) = address, prefixLength < 31,
                let network = IPNetwork(address: .v4(v4), prefixLength: prefixLength)
            {
                $0.attribute(IFA.broadcast, network.lastAddress.bytes)
            }
        }
    }

    public static func deleteAddress(_ address: IPAddress, prefixLength: Int, index: Int32) -> NetlinkMessage {
        NetlinkMessage(type: RTM.delAddress, flags: change) {
            ifaddrmsg(&$0, family: address.family, prefixLength: prefixLength, flags: 0, index: index)
            $0.attribute(IFA.local, address.bytes)
            $0.attribute(IFA.address, address.bytes)
        }
    }

    public static func dumpAddresses() -> NetlinkMessage {
        NetlinkMessage(type: RTM.getAddress, flags: dump) {
            ifaddrmsg(&$0, family: AF.unspecified, prefixLength: 0, flags: 0, index: 0)
        }
    }

    // MARK: routes

    /// `ip route add DESTINATION|default [via GATEWAY] [dev INDEX]` in the main table. A route
    /// without a gateway is on-link (scope link), as `ip` makes it.
    public static func addRoute(destination: IPNetwork?, gateway: IPAddress?, index: Int32?, family: UInt8)
        -> NetlinkMessage
    {
        NetlinkMessage(type: RTM.newRoute, flags: createNew) {
            rtmsg(
                &$0, family: family, destinationLength: destination?.prefixLength ?? 0, table: RTA.tableMain,
                protocol: RTA.protocolBoot,
                scope: gateway == nil && family == AF.inet ? RTA.scopeLink : RTA.scopeUniverse,
                type: RTA.typeUnicast)
            routeAttributes(&$0, destination: destination, gateway: gateway, index: index)
        }
    }

    /// `ip route del …`: any protocol, type and scope in the main table.
    public static func deleteRoute(destination: IPNetwork?, gateway: IPAddress?, index: Int32?, family: UInt8)
        -> NetlinkMessage
    {
        NetlinkMessage(type: RTM.delRoute, flags: change) {
            rtmsg(
                &$0, family: family, destinationLength: destination?.prefixLength ?? 0, table: RTA.tableMain,
                scope: RTA.scopeNowhere)
            routeAttributes(&$0, destination: destination, gateway: gateway, index: index)
        }
    }

    static func routeAttributes(
        _ writer: inout NetlinkWriter, destination: IPNetwork?, gateway: IPAddress?, index: Int32?
    ) {
        if let destination, destination.prefixLength > 0 {
            writer.attribute(RTA.destination, destination.address.bytes)
        }
        if let gateway { writer.attribute(RTA.gateway, gateway.bytes) }
        if let index { writer.attribute(RTA.outputInterface, int32: index) }
    }

    public static func dumpRoutes(family: UInt8) -> NetlinkMessage {
        NetlinkMessage(type: RTM.getRoute, flags: dump) { rtmsg(&$0, family: family) }
    }

    // MARK: neighbours and forwarding database

    /// `ip neigh replace ADDRESS lladdr MAC dev INDEX nud permanent`.
    public static func addNeighbour(_ address: IPAddress, mac: MACAddress, index: Int32) -> NetlinkMessage {
        NetlinkMessage(type: RTM.newNeighbour, flags: change | Netlink.create | Netlink.replace) {
            ndmsg(&$0, family: address.family, index: index, state: NDA.statePermanent)
            $0.attribute(NDA.destination, address.bytes)
            $0.attribute(NDA.linkLayerAddress, mac.bytes)
        }
    }

    public static func deleteNeighbour(_ address: IPAddress, index: Int32) -> NetlinkMessage {
        NetlinkMessage(type: RTM.delNeighbour, flags: change) {
            ndmsg(&$0, family: address.family, index: index)
            $0.attribute(NDA.destination, address.bytes)
        }
    }

    public static func dumpNeighbours() -> NetlinkMessage {
        NetlinkMessage(type: RTM.getNeighbour, flags: dump) { ndmsg(&$0, family: AF.unspecified) }
    }

    /// `bridge fdb append MAC dev INDEX dst DESTINATION self permanent` for the all-zero (flood) and
    /// multicast addresses, so that several remote VTEPs coexist; `bridge fdb replace …` for a
    /// unicast MAC, which lives at one VTEP at a time (the kernel ignores an append to one).
    public static func addFDB(mac: MACAddress, destination: IPAddress, index: Int32) -> NetlinkMessage {
        let flood = mac.bytes.allSatisfy { $0 == 0 } || (mac.bytes.first ?? 0) & 1 == 1
        let mode = flood ? Netlink.append : Netlink.replace
        return NetlinkMessage(type: RTM.newNeighbour, flags: change | Netlink.create | mode) {
            ndmsg(&$0, family: AF.bridge, index: index, state: NDA.statePermanent, flags: NDA.flagSelf)
            $0.attribute(NDA.linkLayerAddress, mac.bytes)
            $0.attribute(NDA.destination, destination.bytes)
        }
    }

    /// `bridge fdb del MAC dev INDEX dst DESTINATION self`: removes that one remote.
    public static func deleteFDB(mac: MACAddress, destination: IPAddress, index: Int32) -> NetlinkMessage {
        NetlinkMessage(type: RTM.delNeighbour, flags: change) {
            ndmsg(&$0, family: AF.bridge, index: index, state: NDA.statePermanent, flags: NDA.flagSelf)
            $0.attribute(NDA.linkLayerAddress, mac.bytes)
            $0.attribute(NDA.destination, destination.bytes)
        }
    }

    public static func dumpFDB() -> NetlinkMessage {
        NetlinkMessage(type: RTM.getNeighbour, flags: dump) { ndmsg(&$0, family: AF.bridge) }
    }
}
