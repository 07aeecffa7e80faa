import AtollCore
import GRDB

/// An overlay network's options: its VXLAN identifier, the remote hosts (VTEPs) that share it,
/// and the local address the tunnel leaves from.
enum OverlayOptions {
    static let vniKey = "vni"
    static let peersKey = "peers"
    static let localKey = "local"

    /// Checks the options and fills in the VNI when none is given: derived from the network's
    /// name, so that the same `network create` on every host gives the same segment.
    static func validated(_ given: [String: String], name: String) throws -> [String: String] {
        var options = given
        if let text = options[vniKey] {
            guard let vni = UInt32(text), (1...0xFF_FFFF).contains(vni) else {
                throw AtollError.invalidArgument("invalid vni \"\(text)\": want a number from 1 to 16777215")
            }
        } else {
            options[vniKey] = String(derivedVNI(name))
        }
        options[peersKey] = try peers(options).map(\.description).joined(separator: ",")
        if let local = options[localKey], IPAddress(local) == nil {
            throw AtollError.invalidArgument("invalid local address \"\(local)\" for the overlay")
        }
        return options
    }

    /// FNV-1a of the name folded into 24 bits (0 avoided).
    static func derivedVNI(_ name: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in name.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        let vni = (hash >> 24 ^ hash) & 0xFF_FFFF
        return vni == 0 ? 1 : vni
    }

    static func vni(_ network: NetworkRecord) -> UInt32 {
        network.options[vniKey].flatMap { UInt32($0) } ?? derivedVNI(network.name)
    }

    static func peers(_ options: [String: String]) throws -> [IPAddress] {
        guard let list = options[peersKey], !list.isEmpty else { return [] }
        return try list.split(separator: ",").map { text in
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard let address = IPAddress(trimmed) else {
                throw AtollError.invalidArgument("invalid overlay peer \"\(trimmed)\": want an IP address")
            }
            return address
        }
    }

    static func vxlanDevice(_ network: NetworkRecord) -> String { "vx-\(network.id.prefix(11))" }

    /// Overlays lose 50 bytes to the VXLAN header (their MTU is recorded at creation from the
    /// underlay; 1450 for a record without one); bridges take the kernel's default.
    static func mtu(_ network: NetworkRecord) -> Int? { network.driver == "overlay" ? 1450 : nil }
}

extension NetworkService {
    /// The MTU of the link that carries tunnel traffic: the one routing to the first peer (the
    /// most specific route), else the default route's; 1500 when neither is known.
    func underlayMTU(toward peers: [IPAddress]) throws -> Int {
        let routes = try netlink.routes(family: .ipv4) + netlink.routes(family: .ipv6)
        let route =
            peers.first.flatMap { peer in
                routes.filter { $0.destination?.contains(peer) == true }.max {
                    ($0.destination?.prefixLength ?? 0) < ($1.destination?.prefixLength ?? 0)
                }
            } ?? routes.first(where: \.isDefault)
        guard let index = route?.index, let link = try netlink.links().first(where: { $0.index == index }) else {
            return 1500
        }
        return link.mtu
    }

    /// The VXLAN device on the overlay's bridge, learning off, and one all-zero forwarding entry
    /// per peer, so that broadcast and unknown traffic is copied to each of them (no multicast).
    func setUpVXLAN(_ network: NetworkRecord, bridge: Int32) throws {
        let name = OverlayOptions.vxlanDevice(network)
        let index: Int32
        if let existing = try netlink.linkIndex(named: name) {
            index = existing
        } else {
            index = try netlink.createVXLAN(
                name: name, vni: OverlayOptions.vni(network),
                local: network.options[OverlayOptions.localKey].flatMap {
                    IPAddress($0)
                }, underlay: nil, port: 4789, mtu: network.mtu ?? OverlayOptions.mtu(network), master: bridge)
        }
        try netlink.setUp(index: index)
        try syncPeers(network, vxlan: index)
    }

    /// Makes the VXLAN forwarding database's flood entries match the peer list, in place.
    func syncPeers(_ network: NetworkRecord, vxlan index: Int32) throws {
        let wanted = Set(try OverlayOptions.peers(network.options))
        let present = Set(
            try netlink.forwardingEntries(index: index).filter { $0.mac == .zero }.compactMap(\.destination))
        for peer in wanted.subtracting(present) { try netlink.addFDB(mac: .zero, destination: peer, index: index) }
        for peer in present.subtracting(wanted) { try netlink.deleteFDB(mac: .zero, destination: peer, index: index) }
    }

    /// Adds and removes remote hosts of an overlay network; the tunnel follows at once, and
    /// containers keep running.
    public func updatePeers(_ reference: String, adding: [String], removing: [String]) throws -> NetworkRecord {
        try lock.withLock {
            var network = try resolve(reference)
            guard network.driver == "overlay" else {
                throw AtollError.invalidArgument("network \(network.name) is not an overlay network: it has no peers")
            }
            var peers = try OverlayOptions.peers(network.options)
            for text in adding {
                guard let peer = IPAddress(text) else {
                    throw AtollError.invalidArgument("invalid overlay peer \"\(text)\": want an IP address")
                }
                if !peers.contains(peer) { peers.append(peer) }
            }
            for text in removing {
                guard let peer = IPAddress(text), peers.contains(peer) else {
                    throw AtollError.notFound("\(text) is not a peer of network \(network.name)")
                }
                peers.removeAll { $0 == peer }
            }
            network.options[OverlayOptions.peersKey] = peers.map(\.description).joined(separator: ",")
            try database.write { db in try network.update(db) }
            if let index = try netlink.linkIndex(named: OverlayOptions.vxlanDevice(network)) {
                try syncPeers(network, vxlan: index)
            }
            return network
        }
    }
}
