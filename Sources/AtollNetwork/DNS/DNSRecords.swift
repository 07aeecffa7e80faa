import Synchronization

/// The names one network answers for: container names, network aliases and short container IDs,
/// each with the container's addresses on that network. Updated by the engine on container
/// start/stop/connect/disconnect and read by the server on every query.
public final class DNSRecords: Sendable {
    private struct Table: Sendable {
        var byName: [String: [IPAddress]] = [:]
        var byAddress: [IPAddress: String] = [:]
        /// Names only some clients see: those of the other networks a container is also on.
        var byClient: [IPAddress: [String: [IPAddress]]] = [:]
    }

    private let table = Mutex(Table())

    public init() {}

    /// Replaces all records at once: name (case-insensitive, a trailing dot ignored) to addresses.
    /// `reverse` names the answer to a PTR query for an address (Docker answers with the container
    /// name); an address not in it answers with one of its names, chosen deterministically
    /// (names that do not look like a short container ID first, then the shortest, then
    /// alphabetically). Names that are not valid DNS names are skipped.
    /// `clientViews` adds names for queries from one client address only (a container also on
    /// other networks resolves their names too, as in Docker).
    public func replace(
        _ records: [String: [IPAddress]], reverse: [IPAddress: String] = [:],
        clientViews: [IPAddress: [String: [IPAddress]]] = [:]
    ) {
        var next = Table()
        for (client, names) in clientViews {
            next.byClient[client] = Dictionary(
                names.compactMap { name, addresses in Self.key(name).map { ($0, addresses) } },
                uniquingKeysWith: { a, b in a + b.filter { !a.contains($0) } })
        }
        for (name, addresses) in records {
            guard let key = Self.key(name) else { continue }
            var merged = next.byName[key, default: []]
            for address in addresses where !merged.contains(address) { merged.append(address) }
            next.byName[key] = merged
        }
        for (key, addresses) in next.byName {
            for address in addresses {
                if let current = next.byAddress[address], Self.rank(current) <= Self.rank(key) { continue }
                next.byAddress[address] = key
            }
        }
        for (address, name) in reverse {
            if let key = Self.key(name) { next.byAddress[address] = key }
        }
        table.withLock { $0 = next }
    }

    /// The addresses of a local name, or nil if the name is not local. A local name may have no
    /// address of the family asked for; the server then answers NOERROR with no records.
    public func addresses(for name: String, client: IPAddress? = nil) -> [IPAddress]? {
        guard let key = Self.key(name) else { return nil }
        return table.withLock { table in table.byName[key] ?? client.flatMap { table.byClient[$0]?[key] } }
    }

    /// The name a PTR query for `address` answers with (without a trailing dot), or nil.
    public func name(for address: IPAddress) -> String? {
        table.withLock { $0.byAddress[address] }
    }

    /// All records, keyed by lower-case name.
    public var all: [String: [IPAddress]] { table.withLock { $0.byName } }

    /// The lookup key of a name: lower case, no trailing dot; nil if it is not a valid DNS name.
    static func key(_ name: String) -> String? {
        guard let parsed = DNSName(name), !parsed.labels.isEmpty else { return nil }
        return parsed.key
    }

    private static func rank(_ name: String) -> (Int, Int, String) {
        let looksLikeID = name.count == 12 && name.allSatisfy(\.isHexDigit)
        return (looksLikeID ? 1 : 0, name.count, name)
    }
}
