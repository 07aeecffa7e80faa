import AtollCore
import Synchronization

/// One NETLINK_ROUTE socket, in the caller's network namespace or in a given one, and the
/// operations Atoll needs on links, addresses, routes, neighbours and the VXLAN forwarding
/// database. Requests are serialized; each reply is matched to its request by sequence number.
///
/// Errors are `AtollError`s naming the object and the kernel's errno: EEXIST is `.alreadyExists`,
/// ENODEV/ENOENT/ESRCH `.notFound`, EPERM/EACCES `.permissionDenied`, anything else `.internalError`.
public final class RouteNetlink: Sendable {
    /// Address families of routes.
    public enum Family: Sendable, Hashable {
        case ipv4, ipv6

        var number: UInt8 { self == .ipv4 ? AF.inet : AF.inet6 }
    }

    /// How often a dump that the kernel flags as interrupted (NLM_F_DUMP_INTR) is retried.
    static let dumpAttempts = 5

    private struct State {
        var transport: any NetlinkTransport
        var sequence: UInt32
    }

    private let state: Mutex<State>

    /// Talks through `transport` (a fake in tests); sequence numbers start after `firstSequence`.
    public init(transport: sending any NetlinkTransport, firstSequence: UInt32 = 0) {
        state = Mutex(State(transport: transport, sequence: firstSequence))
    }

    /// A socket in the caller's network namespace.
    public convenience init() throws {
        let socket: NetlinkSocket
        do {
            socket = try NetlinkSocket()
        } catch {
            let errno = (error as? SystemCallError)?.errno ?? 0
            throw Self.mapped(errno: errno, "opening rtnetlink socket")
        }
        self.init(transport: socket)
    }

    /// A socket inside `namespace`, created on a throwaway thread that setns()'s into it; the socket
    /// stays bound to that namespace.
    public convenience init(namespace: NetworkNamespace) throws {
        let fd = try namespace.open()
        let socket: NetlinkSocket
        do {
            socket = try NetlinkSocket(namespace: fd)
        } catch {
            let errno = (error as? SystemCallError)?.errno ?? 0
            throw Self.mapped(errno: errno, "opening rtnetlink socket in \"\(namespace.path)\"")
        }
        fd.close()
        self.init(transport: socket)
    }

    // MARK: links

    public func linkIndex(named name: String) throws -> Int32? { try link(named: name)?.index }

    /// Every link of the namespace.
    public func links() throws -> [LinkInfo] {
        try dump(RouteRequest.dumpLinks(), "listing links").compactMap(LinkInfo.init)
    }

    public func link(named name: String) throws -> LinkInfo? {
        do {
            return try request(RouteRequest.getLink(named: name), "looking up link \"\(name)\"")
                .lazy.compactMap(LinkInfo.init).first
        } catch {
            if let error = error as? AtollError, error.code == .notFound { return nil }
            throw error
        }
    }

    /// Creates a bridge (left down) and returns its index.
    public func createBridge(name: String, mtu: Int? = nil) throws -> Int32 {
        try Self.validate(linkName: name)
        try request(RouteRequest.createBridge(name: name, mtu: mtu), "creating bridge \"\(name)\"")
        return try createdIndex(name)
    }

    /// A veth pair whose end `name` is in this socket's namespace (optionally enslaved to `master`,
    /// with `mtu`) and whose peer is born inside `peerNamespace` as `peerName` with `peerMAC` — one
    /// RTM_NEWLINK with VETH_INFO_PEER and IFLA_NET_NS_FD, so no temporary name ever appears. Both
    /// ends are left down. Returns the index of the end `name`.
    public func createVeth(
        name: String, master: Int32?, mtu: Int?, peerName: String, peerNamespace: NetworkNamespace,
        peerMAC: MACAddress?
    ) throws -> Int32 {
        try Self.validate(linkName: name)
        try Self.validate(linkName: peerName)
        let fd = try peerNamespace.open()
        defer { fd.close() }
        let message = RouteRequest.createVeth(
            name: name, master: master, mtu: mtu, peerName: peerName, peerNamespaceFD: fd.rawValue, peerMAC: peerMAC)
        try request(message, "creating veth \"\(name)\" with peer \"\(peerName)\" in \"\(peerNamespace.path)\"")
        return try createdIndex(name)
    }

    /// A VXLAN device: VNI, optional local address and underlay device, UDP port (4789 is the IANA
    /// one), learning off, optional mtu and master. Left down; returns its index.
    public func createVXLAN(
        name: String, vni: UInt32, local: IPAddress? = nil, underlay: Int32? = nil, port: UInt16 = 4789,
        mtu: Int? = nil, master: Int32? = nil
    ) throws -> Int32 {
        try Self.validate(linkName: name)
        let message = RouteRequest.createVXLAN(
            name: name, vni: vni, local: local, underlay: underlay, port: port, mtu: mtu, master: master)
        try request(message, "creating vxlan \"\(name)\" (vni \(vni))")
        return try createdIndex(name)
    }

    /// Deletes a link (and a veth's peer with it); a missing index is `.notFound`.
    public func deleteLink(index: Int32) throws {
        try request(RouteRequest.deleteLink(index: index), "deleting link \(index)")
    }

    /// Deletes a link by name; a missing link is not an error.
    public func deleteLink(named name: String) throws {
        do {
            try request(RouteRequest.deleteLink(named: name), "deleting link \"\(name)\"")
        } catch {
            if let error = error as? AtollError, error.code == .notFound { return }
            throw error
        }
    }

    public func setUp(index: Int32) throws {
        try request(RouteRequest.setLink(index: index, up: true), "setting link \(index) up")
    }

    public func setDown(index: Int32) throws {
        try request(RouteRequest.setLink(index: index, up: false), "setting link \(index) down")
    }

    /// Enslaves the link to `master` (a bridge), or frees it with nil.
    public func setMaster(index: Int32, master: Int32?) throws {
        let what = master.map { "setting master of link \(index) to \($0)" } ?? "removing master of link \(index)"
        try request(RouteRequest.setMaster(index: index, master: master), what)
    }

    public func setMTU(index: Int32, mtu: Int) throws {
        try request(RouteRequest.setMTU(index: index, mtu: mtu), "setting mtu of link \(index) to \(mtu)")
    }

    public func setMAC(index: Int32, mac: MACAddress) throws {
        try request(RouteRequest.setMAC(index: index, mac: mac), "setting address of link \(index) to \(mac)")
    }

    /// Renames a link (it must be down).
    public func rename(index: Int32, to name: String) throws {
        try Self.validate(linkName: name)
        try request(RouteRequest.rename(index: index, to: name), "renaming link \(index) to \"\(name)\"")
    }

    /// Moves a link into another network namespace (where it keeps its name, and is down).
    public func move(index: Int32, to namespace: NetworkNamespace) throws {
        let fd = try namespace.open()
        defer { fd.close() }
        try request(
            RouteRequest.move(index: index, toNamespaceFD: fd.rawValue),
            "moving link \(index) to \"\(namespace.path)\"")
    }

    // MARK: addresses

    /// Assigns `address/prefixLength` to the link; an address already there is `.alreadyExists`.
    public func addAddress(_ address: IPAddress, prefixLength: Int, index: Int32) throws {
        try request(
            RouteRequest.addAddress(address, prefixLength: prefixLength, index: index),
            "adding address \(address)/\(prefixLength) to link \(index)")
    }

    public func deleteAddress(_ address: IPAddress, prefixLength: Int, index: Int32) throws {
        try request(
            RouteRequest.deleteAddress(address, prefixLength: prefixLength, index: index),
            "deleting address \(address)/\(prefixLength) from link \(index)")
    }

    /// The addresses of one link, or of every link with nil.
    public func addresses(index: Int32? = nil) throws -> [AddressInfo] {
        try dump(RouteRequest.dumpAddresses(), "listing addresses").compactMap(AddressInfo.init)
            .filter { index == nil || $0.index == index }
    }

    // MARK: routes

    /// Adds a route to the main table; a nil destination is the default route. The family comes
    /// from the destination or the gateway (or `family` when there is neither).
    public func addRoute(
        destination: IPNetwork?, gateway: IPAddress?, index: Int32?, family: Family? = nil
    ) throws {
        let what = "adding route \(Self.describe(destination, gateway, index))"
        let number = try Self.family(destination, gateway, family, what)
        try request(
            RouteRequest.addRoute(destination: destination, gateway: gateway, index: index, family: number), what)
    }

    public func deleteRoute(
        destination: IPNetwork?, gateway: IPAddress?, index: Int32?, family: Family? = nil
    ) throws {
        let what = "deleting route \(Self.describe(destination, gateway, index))"
        let number = try Self.family(destination, gateway, family, what)
        try request(
            RouteRequest.deleteRoute(destination: destination, gateway: gateway, index: index, family: number), what)
    }

    /// The main table's routes of one family.
    public func routes(family: Family) throws -> [RouteInfo] {
        try dump(RouteRequest.dumpRoutes(family: family.number), "listing routes").compactMap(RouteInfo.init)
            .filter { $0.table == UInt32(RTA.tableMain) }
    }

    // MARK: neighbours and forwarding database

    /// A permanent ARP/NDP entry, replacing any existing one for the address.
    public func addNeighbour(_ address: IPAddress, mac: MACAddress, index: Int32) throws {
        try request(
            RouteRequest.addNeighbour(address, mac: mac, index: index),
            "adding neighbour \(address) at \(mac) on link \(index)")
    }

    public func deleteNeighbour(_ address: IPAddress, index: Int32) throws {
        try request(
            RouteRequest.deleteNeighbour(address, index: index), "deleting neighbour \(address) on link \(index)")
    }

    /// The ARP and NDP entries of a link.
    public func neighbours(index: Int32) throws -> [NeighbourInfo] {
        try dump(RouteRequest.dumpNeighbours(), "listing neighbours").compactMap(NeighbourInfo.init)
            .filter { $0.index == index }
    }

    /// A permanent forwarding entry on a VXLAN device: frames for `mac` go to the VTEP
    /// `destination`. The all-zero MAC is appended, so several VTEPs receive flooded traffic.
    public func addFDB(mac: MACAddress, destination: IPAddress, index: Int32) throws {
        try request(
            RouteRequest.addFDB(mac: mac, destination: destination, index: index),
            "adding forwarding entry \(mac) to \(destination) on link \(index)")
    }

    public func deleteFDB(mac: MACAddress, destination: IPAddress, index: Int32) throws {
        try request(
            RouteRequest.deleteFDB(mac: mac, destination: destination, index: index),
            "deleting forwarding entry \(mac) to \(destination) on link \(index)")
    }

    /// The forwarding entries of a device (one per remote VTEP).
    public func forwardingEntries(index: Int32) throws -> [FDBEntry] {
        try dump(RouteRequest.dumpFDB(), "listing forwarding entries").compactMap(FDBEntry.init)
            .filter { $0.index == index }
    }

    // MARK: exchange

    /// Sends a request and collects the messages answering it up to the acknowledgement (or, for a
    /// dump, NLMSG_DONE). Messages with another sequence number are left behind unread.
    @discardableResult
    func request(_ message: NetlinkMessage, _ what: @autoclosure () -> String) throws -> [NetlinkReply] {
        try exchange(message, what).replies
    }

    /// A dump, run again when the kernel says the set changed under it (NLM_F_DUMP_INTR).
    func dump(_ message: NetlinkMessage, _ what: @autoclosure () -> String) throws -> [NetlinkReply] {
        for _ in 1..<Self.dumpAttempts {
            let (replies, interrupted) = try exchange(message, what)
            if !interrupted { return replies }
        }
        let (replies, interrupted) = try exchange(message, what)
        if interrupted {
            throw AtollError(.unavailable, "\(what()): dump interrupted \(Self.dumpAttempts) times")
        }
        return replies
    }

    private func exchange(_ message: NetlinkMessage, _ what: () -> String) throws -> (
        replies: [NetlinkReply], interrupted: Bool
    ) {
        try state.withLock { state in
            state.sequence &+= 1
            if state.sequence == 0 { state.sequence = 1 }
            let sequence = state.sequence
            do {
                try state.transport.send(message.encoded(sequence: sequence))
            } catch {
                throw Self.transportError(error, what())
            }
            var replies: [NetlinkReply] = []
            var interrupted = false
            while true {
                let datagram: [UInt8]
                do {
                    datagram = try state.transport.receive()
                } catch {
                    throw Self.transportError(error, what())
                }
                for reply in try NetlinkParser.messages(in: datagram) where reply.sequence == sequence {
                    if reply.flags & Netlink.dumpInterrupted != 0 { interrupted = true }
                    switch reply.type {
                    case Netlink.error:
                        guard let status = reply.errorStatus else {
                            throw AtollError.dataLoss("\(what()): truncated netlink error message")
                        }
                        if status.errno != 0 {
                            throw Self.mapped(errno: status.errno, what(), kernelMessage: status.message)
                        }
                        return (replies, interrupted)
                    case Netlink.done:
                        if let error = reply.payload.int32(at: 0), error < 0 {
                            throw Self.mapped(errno: -error, what(), kernelMessage: nil)
                        }
                        return (replies, interrupted)
                    case Netlink.noop:
                        continue
                    case Netlink.overrun:
                        throw AtollError(.unavailable, "\(what()): netlink receive buffer overrun")
                    default:
                        replies.append(reply)
                    }
                }
            }
        }
    }

    // MARK: helpers

    private func createdIndex(_ name: String) throws -> Int32 {
        guard let index = try linkIndex(named: name) else {
            throw AtollError.notFound("link \"\(name)\" not found right after it was created")
        }
        return index
    }

    private static func describe(_ destination: IPNetwork?, _ gateway: IPAddress?, _ index: Int32?) -> String {
        var text = destination?.description ?? "default"
        if let gateway { text += " via \(gateway)" }
        if let index { text += " dev \(index)" }
        return text
    }

    private static func family(_ destination: IPNetwork?, _ gateway: IPAddress?, _ family: Family?, _ what: String)
        throws -> UInt8
    {
        let inferred = destination?.address.family ?? gateway?.family ?? family?.number
        guard let inferred else {
            throw AtollError.invalidArgument("\(what): a route needs a destination, a gateway or a family")
        }
        if let gateway, gateway.family != inferred {
            throw AtollError.invalidArgument("\(what): gateway \(gateway) is not of the destination's family")
        }
        return inferred
    }

    private static func transportError(_ error: any Error, _ what: String) -> AtollError {
        if let error = error as? AtollError { return error }
        if let error = error as? SystemCallError { return mapped(errno: error.errno, "\(what): \(error.call)") }
        return AtollError.internalError(what, cause: error)
    }

    /// `what: reason [(kernel message)]` with the code the errno maps to; an `.internalError`
    /// carries the errno as its cause (`NetlinkFailure`) for callers that need to tell causes apart.
    static func mapped(errno: Int32, _ what: String, kernelMessage: String? = nil) -> AtollError {
        var message = "\(what): \(NetlinkSyscall.describe(errno: errno))"
        if let kernelMessage, !kernelMessage.isEmpty { message += " (\(kernelMessage))" }
        switch errno {
        case NetlinkErrno.exists: return AtollError(.alreadyExists, message)
        case NetlinkErrno.noDevice, NetlinkErrno.noEntry, NetlinkErrno.noProcess: return AtollError(.notFound, message)
        case NetlinkErrno.permissionDenied, NetlinkErrno.accessDenied: return AtollError(.permissionDenied, message)
        default: return AtollError(.internalError, message, cause: NetlinkFailure(errno: errno))
        }
    }

    /// Interface names the kernel accepts: 1 to 15 bytes, no slash, colon or white space, not "." or "..".
    static func validate(linkName name: String) throws {
        let bytes = Array(name.utf8)
        guard (1...15).contains(bytes.count), name != ".", name != "..",
            !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7f })
        else {
            throw AtollError.invalidArgument(
                "invalid link name \"\(name)\": it must be 1 to 15 bytes without \"/\", \":\" or white space")
        }
    }
}

/// The errno behind an `.internalError` from the kernel, for callers that need to tell causes apart.
public struct NetlinkFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public let errno: Int32
    public var description: String { "errno \(errno)" }
}
