/// Address management for one network: which addresses a subnet hands out and which subnet a new
/// network gets. Pure: what is taken comes from the database, which also enforces uniqueness.
public enum AddressAllocator {
    /// The pools networks get a subnet from when none is given, Docker's defaults:
    /// 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/20 … 192.168.240.0/20.
    public static let defaultPools: [IPNetwork] =
        (17...31).compactMap { IPNetwork("172.\($0).0.0/16") }
        + stride(from: 0, to: 256, by: 16).compactMap { IPNetwork("192.168.\($0).0/20") }

    /// The first default pool that overlaps none of `taken` (other networks' subnets and the
    /// host's routes).
    public static func freeSubnet(avoiding taken: [IPNetwork]) -> IPNetwork? {
        defaultPools.first { pool in !taken.contains { $0.overlaps(pool) } }
    }

    /// The gateway a subnet gets when none is given: its first host address.
    public static func defaultGateway(of subnet: IPNetwork) -> IPAddress { subnet.offset(by: 1) }

    /// The lowest free address of `pool` (inside `subnet`): never the subnet's own address, its
    /// IPv4 broadcast, the gateway, or one in `used`. Nil when the pool is full.
    public static func allocate(
        subnet: IPNetwork, pool: IPNetwork, gateway: IPAddress?, used: Set<IPAddress>
    ) -> IPAddress? {
        let limit = min(pool.hostCount, UInt64(used.count) + 3)
        var index: UInt64 = 0
        // At most used + 3 candidates are unusable (used, network, broadcast, gateway), so the scan
        // ends after that many whatever the pool's size.
        while index <= limit, index < pool.hostCount {
            let candidate = pool.offset(by: index)
            index += 1
            if isAssignable(candidate, in: subnet, gateway: gateway) && !used.contains(candidate) { return candidate }
        }
        return nil
    }

    /// Whether `address` may be given to a container: inside the subnet, not its network or
    /// broadcast address, not the gateway.
    public static func isAssignable(_ address: IPAddress, in subnet: IPNetwork, gateway: IPAddress?) -> Bool {
        guard subnet.contains(address), address != gateway else { return false }
        if address == subnet.address && subnet.prefixLength < subnet.address.bitWidth - 1 { return false }
        if address.isIPv4 && subnet.prefixLength < 31 && address == subnet.lastAddress { return false }
        return true
    }
}
