/// A subnet in CIDR notation: an address and a prefix length, the host bits cleared.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    /// The first address of the subnet (host bits zero).
    public let address: IPAddress
    public let prefixLength: Int

    /// A subnet from any address inside it ("10.1.2.3/16" becomes 10.1.0.0/16).
    public init?(address: IPAddress, prefixLength: Int) {
        guard (0...address.bitWidth).contains(prefixLength) else { return nil }
        self.address = IPNetwork.masked(address, prefixLength)
        self.prefixLength = prefixLength
    }

    /// Parses "10.0.0.0/24" or "fd00::/64". A bare address is a host route (/32 or /128).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = IPAddress(parts[0]) else { return nil }
        var length = address.bitWidth
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), parts[1].allSatisfy({ $0.isNumber }) else { return nil }
            length = parsed
        }
        self.init(address: address, prefixLength: length)
    }

    public var description: String { "\(address)/\(prefixLength)" }

    public var isIPv4: Bool { address.isIPv4 }

    public func contains(_ candidate: IPAddress) -> Bool {
        candidate.isIPv4 == address.isIPv4 && IPNetwork.masked(candidate, prefixLength) == address
    }

    /// Whether the two subnets share any address (one contains the other's first address).
    public func overlaps(_ other: IPNetwork) -> Bool {
        guard isIPv4 == other.isIPv4 else { return false }
        return contains(other.address) || other.contains(address)
    }

    /// Whether every address of `other` is inside this subnet.
    public func contains(_ other: IPNetwork) -> Bool {
        other.prefixLength >= prefixLength && contains(other.address)
    }

    /// The last address (IPv4 broadcast).
    public var lastAddress: IPAddress { offset(by: hostCount - 1) }

    /// How many addresses the subnet spans, capped at 2^62 so that IPv6 arithmetic stays in range.
    public var hostCount: UInt64 {
        let hostBits = address.bitWidth - prefixLength
        return hostBits >= 62 ? 1 << 62 : 1 << UInt64(hostBits)
    }

    /// The address `n` places after the subnet's first one.
    public func offset(by n: UInt64) -> IPAddress {
        switch address {
        case .v4(let a): return .v4(IPv4Address(a.value &+ UInt32(truncatingIfNeeded: n)))
        case .v6(let a):
            let (low, carry) = a.low.addingReportingOverflow(n)
            return .v6(IPv6Address(high: a.high &+ (carry ? 1 : 0), low: low))
        }
    }

    /// How far `candidate` lies from the subnet's first address (it must be inside).
    public func index(of candidate: IPAddress) -> UInt64 {
        switch (address, candidate) {
        case (.v4(let a), .v4(let b)): UInt64(b.value &- a.value)
        case (.v6(let a), .v6(let b)): b.low &- a.low
        default: 0
        }
    }

    private static func masked(_ address: IPAddress, _ length: Int) -> IPAddress {
        switch address {
        case .v4(let a):
            let mask: UInt32 = length == 0 ? 0 : ~0 << UInt32(32 - length)
            return .v4(IPv4Address(a.value & mask))
        case .v6(let a):
            let highMask: UInt64 = length == 0 ? 0 : length >= 64 ? ~0 : ~0 << UInt64(64 - length)
            let lowMask: UInt64 = length <= 64 ? 0 : length == 128 ? ~0 : ~0 << UInt64(128 - length)
            return .v6(IPv6Address(high: a.high & highMask, low: a.low & lowMask))
        }
    }
}
