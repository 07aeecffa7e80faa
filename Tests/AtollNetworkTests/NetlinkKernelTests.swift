import AtollCore
import Foundation
import Testing

@testable import AtollNetwork

/// The rtnetlink operations against the real kernel, each test in scratch namespaces of its own so
/// that the host's links are never touched. Needs root and the bridge, veth and vxlan modules.
struct NetlinkKernelTests {
    func address(_ text: String) throws -> IPAddress { try #require(IPAddress(text)) }
    func mac(_ text: String) throws -> MACAddress { try #require(MACAddress(text)) }

    @Test func aBridgeIsCreatedConfiguredAndDeleted() throws {
        let lab = try NamespaceLab()
        defer { lab.removeAll() }
        let netlink = try RouteNetlink(namespace: try lab.namespace())

        let index = try netlink.createBridge(name: "atl-br0", mtu: 1400)
        var bridge = try #require(try netlink.link(named: "atl-br0"))
        #expect(bridge.index == index)
        #expect(bridge.kind == "bridge")
        #expect(bridge.mtu == 1400)
        #expect(!bridge.isUp)

        try netlink.rename(index: index, to: "atl-br1")
        try netlink.setMTU(index: index, mtu: 1300)
        try netlink.setMAC(index: index, mac: try mac("02:42:ac:11:00:01"))
        try netlink.setUp(index: index)
        bridge = try #require(try netlink.links().first { $0.index == index })
        #expect(bridge.name == "atl-br1")
        #expect(bridge.mtu == 1300)
        #expect(bridge.mac == (try mac("02:42:ac:11:00:01")))
        #expect(bridge.isUp)
        #expect(try netlink.linkIndex(named: "atl-br0") == nil)

        try netlink.setDown(index: index)
        #expect(try netlink.link(named: "atl-br1")?.isUp == false)

        try netlink.deleteLink(index: index)
        #expect(try netlink.link(named: "atl-br1") == nil)
        let error = #expect(throws: AtollError.self) { try netlink.deleteLink(index: index) }
        #expect(error?.code == .notFound)
    }

    @Test func deletingAMissingLinkByNameSucceeds() throws {
        let lab = try NamespaceLab()
        defer { lab.removeAll() }
        let netlink = try RouteNetlink(namespace: try lab.namespace())
        try netlink.deleteLink(named: "atl-nothing")
        _ = try netlink.createBridge(name: "atl-gone")
        try netlink.deleteLink(named: "atl-gone")
        #expect(try netlink.link(named: "atl-gone") == nil)
    }

    @Test func aDuplicateLinkNameIsAlreadyExistsNamingTheLink() throws {
        let lab = try NamespaceLab()
        defer { lab.removeAll() }
        let netlink = try RouteNetlink(namespace: try lab.namespace())
        _ = try netlink.createBridge(name: "atl-dup")
        let error = #expect(throws: AtollError.self) { try netlink.createBridge(name: "atl-dup") }
        #expect(error?.code == .alreadyExists)
        #expect(error?.message.contains("\"atl-dup\"") == true)
        #expect(error?.message.contains("file exists") == true)
    }

    @Test func aVethJoinsABridgeWithItsPeerAsEth0InTheContainerNamespace() throws {
        let lab = try NamespaceLab()
        defer { lab.removeAll() }
        let hostNamespace = try lab.namespace()
        let containerNamespace = try lab.namespace()
        let host = try RouteNetlink(namespace: hostNamespace)
        let container = try RouteNetlink(namespace: containerNamespace)

        let bridge = try host.createBridge(name: "atl-br0")
        let peerMAC = try mac("02:42:0a:4d:00:02")
        let veth = try host.createVeth(
            name: "veth-t1", master: bridge, mtu: 1400, peerName: "eth0", peerNamespace: containerNamespace,
            peerMAC: peerMAC)
        try host.setUp(index: bridge)
        try host.setUp(index: veth)

        let hostEnd = try #require(try host.links().first { $0.index == veth })
        #expect(hostEnd.name == "veth-t1")
        #expect(hostEnd.kind == "veth")
        #expect(hostEnd.masterIndex == bridge)
        #expect(hostEnd.mtu == 1400)
        #expect(hostEnd.isUp)
        #expect(try host.link(named: "eth0") == nil)

        let eth0 = try #require(try container.link(named: "eth0"))
        #expect(eth0.kind == "veth")
        #expect(eth0.mac == peerMAC)
        #expect(eth0.mtu == 1400)
        #expect(eth0.masterIndex == nil)
        try container.setUp(index: eth0.index)
        #expect(try container.link(named: "eth0")?.isUp == true)

        // Addresses on both sides, then default routes through the bridge's addresses.
        try host.addAddress(try address("10.77.0.1"), prefixLength: 24, index: bridge)
        try host.addAddress(try address("fd77::1"), prefixLength: 64, index: bridge)
        try container.addAddress(try address("10.77.0.2"), prefixLength: 24, index: eth0.index)
        try container.addAddress(try address("fd77::2"), prefixLength: 64, index: eth0.index)
        try container.addRoute(destination: nil, gateway: try address("10.77.0.1"), index: eth0.index)
        try container.addRoute(destination: nil, gateway: try address("fd77::1"), index: eth0.index)
        let extra = try #require(IPNetwork("10.78.0.0/16"))
        try container.addRoute(destination: extra, gateway: try address("10.77.0.1"), index: nil)

        let containerAddresses = Set(
            try container.addresses(index: eth0.index).map { "\($0.address)/\($0.prefixLength)" })
        #expect(containerAddresses.isSuperset(of: ["10.77.0.2/24", "fd77::2/64"]))
        let hostAddresses = Set(try host.addresses(index: bridge).map { "\($0.address)/\($0.prefixLength)" })
        #expect(hostAddresses.isSuperset(of: ["10.77.0.1/24", "fd77::1/64"]))
        #expect(try host.addresses(index: veth).allSatisfy { !$0.address.isIPv4 })

        let v4Routes = try container.routes(family: .ipv4)
        #expect(v4Routes.contains { $0.isDefault && $0.gateway == IPAddress("10.77.0.1") && $0.index == eth0.index })
        #expect(v4Routes.contains { $0.destination == IPNetwork("10.77.0.0/24") && $0.gateway == nil })
        #expect(v4Routes.contains { $0.destination == extra && $0.gateway == IPAddress("10.77.0.1") })
        let v6Routes = try container.routes(family: .ipv6)
        #expect(v6Routes.contains { $0.isDefault && $0.gateway == IPAddress("fd77::1") && $0.index == eth0.index })
        #expect(try host.routes(family: .ipv4).allSatisfy { !$0.isDefault })

        // Adding an address twice is an error that names it; deleting undoes each change.
        let duplicate = #expect(throws: AtollError.self) {
            try container.addAddress(try address("10.77.0.2"), prefixLength: 24, index: eth0.index)
        }
        #expect(duplicate?.code == .alreadyExists)
        #expect(duplicate?.message.contains("10.77.0.2/24") == true)
        try container.deleteRoute(destination: extra, gateway: try address("10.77.0.1"), index: nil)
        try container.deleteRoute(destination: nil, gateway: try address("10.77.0.1"), index: eth0.index)
        #expect(try container.routes(family: .ipv4).allSatisfy { !$0.isDefault && $0.destination != extra })
        try container.deleteAddress(try address("10.77.0.2"), prefixLength: 24, index: eth0.index)
        #expect(try container.addresses(index: eth0.index).allSatisfy { $0.address != IPAddress("10.77.0.2") })

        // Freed from the bridge, and gone with its peer when deleted.
        try host.setMaster(index: veth, master: nil)
        #expect(try host.link(named: "veth-t1")?.masterIndex == nil)
        try host.deleteLink(index: veth)
        #expect(try container.link(named: "eth0") == nil)
    }

    @Test func aLinkMovesToAnotherNamespaceAndIsRenamedThere() throws {
        let lab = try NamespaceLab()
        defer { lab.removeAll() }
        let first = try lab.namespace()
        let second = try lab.namespace()
        let one = try RouteNetlink(namespace: first)
        let two = try RouteNetlink(namespace: second)

        _ = try one.createVeth(name: "vm0", master: nil, mtu: nil, peerName: "vm1", peerNamespace: first, peerMAC: nil)
        let peer = try #require(try one.linkIndex(named: "vm1"))
        try one.move(index: peer, to: second)
        #expect(try one.link(named: "vm1") == nil)
        let moved = try #require(try two.link(named: "vm1"))
        try two.rename(index: moved.index, to: "eth1")
        #expect(try two.link(named: "eth1")?.kind == "veth")
        #expect(try two.linkIndex(named: "vm1") == nil)
    }

    @Test func aVXLANFloodsToSeveralVTEPsAndKnowsItsNeighbours() throws {
        let lab = try NamespaceLab()
        defer { lab.removeAll() }
        let netlink = try RouteNetlink(namespace: try lab.namespace())

        let underlay = try netlink.createBridge(name: "atl-ul0")
        try netlink.addAddress(try address("10.99.0.1"), prefixLength: 24, index: underlay)
        try netlink.setUp(index: underlay)
        let overlay = try netlink.createBridge(name: "atl-ov0")
        let vxlan = try netlink.createVXLAN(
            name: "atl-vx0", vni: 4242, local: try address("10.99.0.1"), underlay: underlay, port: 4789, mtu: 1450,
            master: overlay)
        try netlink.setUp(index: vxlan)

        let device = try #require(try netlink.link(named: "atl-vx0"))
        #expect(device.index == vxlan)
        #expect(device.kind == "vxlan")
        #expect(device.vxlanID == 4242)
        #expect(device.mtu == 1450)
        #expect(device.masterIndex == overlay)
        #expect(device.isUp)

        let remoteMAC = try mac("02:42:0a:00:00:05")
        try netlink.addFDB(mac: .zero, destination: try address("10.99.0.2"), index: vxlan)
        try netlink.addFDB(mac: .zero, destination: try address("10.99.0.3"), index: vxlan)
        try netlink.addFDB(mac: remoteMAC, destination: try address("10.99.0.2"), index: vxlan)
        let expected: Set<FDBEntry> = [
            FDBEntry(index: vxlan, mac: .zero, destination: try address("10.99.0.2")),
            FDBEntry(index: vxlan, mac: .zero, destination: try address("10.99.0.3")),
            FDBEntry(index: vxlan, mac: remoteMAC, destination: try address("10.99.0.2")),
        ]
        let entries = try netlink.forwardingEntries(index: vxlan).filter { $0.destination != nil }
        #expect(Set(entries.map(Self.normalized)) == expected)

        // A unicast MAC moves to its new VTEP rather than gaining a second one.
        try netlink.addFDB(mac: remoteMAC, destination: try address("10.99.0.4"), index: vxlan)
        let moved = try netlink.forwardingEntries(index: vxlan).filter { $0.mac == remoteMAC }
        #expect(moved.map(\.destination) == [try address("10.99.0.4")])

        try netlink.deleteFDB(mac: .zero, destination: try address("10.99.0.3"), index: vxlan)
        let flood = try netlink.forwardingEntries(index: vxlan).filter { $0.mac == .zero }
        #expect(flood.map(\.destination) == [try address("10.99.0.2")])

        let neighbour = try address("10.200.0.5")
        let neighbourMAC = try mac("02:42:0a:c8:00:05")
        try netlink.addNeighbour(neighbour, mac: neighbourMAC, index: overlay)
        try netlink.addNeighbour(neighbour, mac: neighbourMAC, index: overlay)  // replacing is idempotent
        try netlink.addNeighbour(try address("fd99::5"), mac: neighbourMAC, index: overlay)
        let neighbours = try netlink.neighbours(index: overlay)
        #expect(
            Set(neighbours) == [
                NeighbourInfo(index: overlay, address: neighbour, mac: neighbourMAC, state: 0x80),
                NeighbourInfo(index: overlay, address: try address("fd99::5"), mac: neighbourMAC, state: 0x80),
            ])
        #expect(neighbours.allSatisfy { $0.isPermanent })
        try netlink.deleteNeighbour(neighbour, index: overlay)
        #expect(try netlink.neighbours(index: overlay).map(\.address) == [try address("fd99::5")])
        let missing = #expect(throws: AtollError.self) { try netlink.deleteNeighbour(neighbour, index: overlay) }
        #expect(missing?.code == .notFound)
    }

    /// An entry reduced to what the test added (the kernel reports state and flags as it keeps them).
    static func normalized(_ entry: FDBEntry) -> FDBEntry {
        FDBEntry(index: entry.index, mac: entry.mac, destination: entry.destination)
    }
}
