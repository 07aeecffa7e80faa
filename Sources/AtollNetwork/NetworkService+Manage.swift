import AtollCore
import Foundation
import GRDB

extension NetworkService {
    // MARK: - Create

    /// Creates a network: checks the request, records it, and sets up its devices. A failure at
    /// any step leaves no row, bridge or rule behind.
    public func create(_ request: NetworkCreateRequest) throws -> NetworkRecord {
        try lock.withLock {
            var record = try validated(request)
            try database.write { db in
                if try NetworkRecord.filter(Column("name") == record.name).fetchCount(db) > 0 {
                    throw AtollError.alreadyExists("network with name \(record.name) already exists")
                }
                try record.insert(db)
            }
            do {
                try setUpDevices(record)
                try refreshFirewall()
            } catch {
                tearDownDevices(record)
                _ = try? database.write { db in try NetworkRecord.deleteOne(db, key: record.id) }
                try? refreshFirewall()
                throw error
            }
            refreshDNS()
            record = try resolve(record.id)
            return record
        }
    }

    /// Turns a request into a record: names, driver, subnets (chosen from the default pools when
    /// none is given), gateways, ranges and options, each checked.
    func validated(_ request: NetworkCreateRequest) throws -> NetworkRecord {
        guard ObjectName.isValid(request.name) else {
            throw AtollError.invalidArgument(
                "invalid network name \"\(request.name)\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        }
        if ["bridge", "host", "none"].contains(request.name) {
            throw AtollError.alreadyExists("network with name \(request.name) already exists (it is built in)")
        }
        let driver = request.driver.isEmpty ? "bridge" : request.driver
        switch driver {
        case "bridge", "overlay": break
        case "host", "null":
            throw AtollError.invalidArgument("only one instance of \"\(driver)\" network is allowed (it is built in)")
        default:
            throw AtollError.invalidArgument("unknown network driver \"\(driver)\": want bridge or overlay")
        }
        let id = Identifier.random()
        var options = request.options
        if let mtu = options["mtu"] {
            guard let value = Int(mtu), (68...65535).contains(value) else {
                throw AtollError.invalidArgument("invalid mtu \"\(mtu)\": want a number from 68 to 65535")
            }
        }
        let taken = try takenSubnets(excluding: nil)
        var subnets: [SubnetConfig] = []
        for given in request.subnets {
            subnets.append(try checkedSubnet(given, driver: driver, taken: taken + subnets.compactMap(\.network)))
        }
        if subnets.isEmpty {
            guard driver == "bridge" else {
                throw AtollError.invalidArgument(
                    "an overlay network needs --subnet (the same on every host, with a different --ip-range on each)")
            }
            guard let subnet = AddressAllocator.freeSubnet(avoiding: taken) else {
                throw AtollError(.resourceExhausted, "all default address pools are in use: give --subnet")
            }
            subnets = [
                SubnetConfig(
                    subnet: subnet.description, gateway: AddressAllocator.defaultGateway(of: subnet).description)
            ]
        }
        if driver == "overlay" {
            options = try OverlayOptions.validated(options, name: request.name)
            if options["mtu"] == nil {
                options["mtu"] = String(try underlayMTU(toward: OverlayOptions.peers(options)) - 50)
            }
        }
        return NetworkRecord(
            id: id, name: request.name, driver: driver, subnets: subnets, isInternal: request.isInternal,
            labels: request.labels, options: options, bridge: "atl-\(id.prefix(11))")
    }

    private func checkedSubnet(_ given: SubnetConfig, driver: String, taken: [IPNetwork]) throws -> SubnetConfig {
        guard let subnet = IPNetwork(given.subnet), IPAddress(given.subnet.split(separator: "/").first ?? "") != nil,
            given.subnet.contains("/")
        else {
            throw AtollError.invalidArgument(
                "invalid subnet \"\(given.subnet)\": want CIDR notation such as 10.1.0.0/24")
        }
        guard subnet.prefixLength <= subnet.address.bitWidth - 2 else {
            throw AtollError.invalidArgument(
                "subnet \(subnet) is too small: it has no room for a gateway and a container")
        }
        if let clash = taken.first(where: { $0.overlaps(subnet) }) {
            throw AtollError.invalidArgument("subnet \(subnet) overlaps \(clash), which is in use on this host")
        }
        var config = SubnetConfig(subnet: subnet.description)
        if !given.gateway.isEmpty {
            guard let gateway = IPAddress(given.gateway), subnet.contains(gateway) else {
                throw AtollError.invalidArgument("gateway \(given.gateway) is not an address of subnet \(subnet)")
            }
            guard AddressAllocator.isAssignable(gateway, in: subnet, gateway: nil) else {
                throw AtollError.invalidArgument(
                    "gateway \(given.gateway) is the network or broadcast address of \(subnet)")
            }
            config.gateway = gateway.description
        } else if driver == "bridge" {
            config.gateway = AddressAllocator.defaultGateway(of: subnet).description
        }
        if !given.ipRange.isEmpty {
            guard let range = IPNetwork(given.ipRange), subnet.contains(range) else {
                throw AtollError.invalidArgument("ip range \(given.ipRange) is not inside subnet \(subnet)")
            }
            config.ipRange = range.description
        }
        return config
    }

    // MARK: - Remove

    /// Removes a network no container uses.
    public func remove(_ reference: String) throws {
        try lock.withLock {
            let record = try resolve(reference)
            if record.builtin {
                throw AtollError.failedPrecondition("\(record.name) is a pre-defined network and cannot be removed")
            }
            let users = try database.read { db in
                try String.fetchAll(
                    db, sql: "SELECT container_id FROM network_endpoints WHERE network_id = ?", arguments: [record.id])
            }
            if !users.isEmpty {
                throw AtollError.failedPrecondition(
                    "error while removing network \(record.name): network \(record.name) has active endpoints (\(users.map { String($0.prefix(12)) }.joined(separator: ", ")))"
                )
            }
            try database.write { db in _ = try NetworkRecord.deleteOne(db, key: record.id) }
            dns.stop(network: record.id)
            tearDownDevices(record)
            try refreshFirewall()
        }
    }

    /// Removes every user-defined network no container is on (with `labels`, only those that
    /// carry them: a nil value matches any value); returns their names.
    public func prune(labels: [String: String?] = [:]) throws -> [String] {
        var removed: [String] = []
        for details in try list() where !details.record.builtin && details.endpoints.isEmpty {
            let matches = labels.allSatisfy { key, value in
                guard let present = details.record.labels[key] else { return false }
                return value == nil || value == present
            }
            guard matches else { continue }
            do {
                try remove(details.record.id)
                removed.append(details.record.name)
            } catch {
                logger.warning("network prune: \(details.record.name): \(error)")
            }
        }
        return removed
    }

    // MARK: - Devices

    /// The bridge (and for overlays the VXLAN device with its peers) with the gateway address,
    /// up; the sysctls the bridge needs. Idempotent: existing devices are kept.
    func setUpDevices(_ network: NetworkRecord) throws {
        guard network.isBridged else { return }
        let index: Int32
        if let existing = try netlink.linkIndex(named: network.bridge) {
            index = existing
        } else {
            index = try netlink.createBridge(name: network.bridge, mtu: network.mtu ?? OverlayOptions.mtu(network))
        }
        let present = Set(try netlink.addresses(index: index).map(\.address))
        for subnet in network.subnets {
            guard let gateway = subnet.gatewayAddress, let prefix = subnet.network?.prefixLength,
                !present.contains(gateway)
            else { continue }
            try netlink.addAddress(gateway, prefixLength: prefix, index: index)
        }
        try netlink.setUp(index: index)
        if network.driver == "overlay" { try setUpVXLAN(network, bridge: index) }
        var settings = ["net/ipv4/ip_forward": "1"]
        if network.subnets.contains(where: { $0.network?.isIPv4 == false }) {
            settings["net/ipv6/conf/all/forwarding"] = "1"
        }
        // Lets the host reach published ports through 127.0.0.1 (traffic DNAT'ed out of the bridge).
        settings["net/ipv4/conf/\(network.bridge)/route_localnet"] = "1"
        for (key, value) in settings where !Sysctl.set(key, value) {
            logger.warning("cannot set \(key) to \(value): containers on \(network.name) may not reach out")
        }
    }

    /// Deletes the network's devices; missing ones are fine.
    func tearDownDevices(_ network: NetworkRecord) {
        guard network.isBridged else { return }
        if network.driver == "overlay" { try? netlink.deleteLink(named: OverlayOptions.vxlanDevice(network)) }
        try? netlink.deleteLink(named: network.bridge)
    }

    /// Renders the ruleset from the database and replaces Atoll's table with it.
    func refreshFirewall() throws {
        let (networks, ports) = try database.read { db in
            (try NetworkRecord.fetchAll(db), try PortRecord.fetchAll(db))
        }
        let bridges = networks.filter(\.isBridged).map { network in
            FirewallState.Bridge(
                device: network.bridge, subnets: network.subnets.compactMap(\.network), isInternal: network.isInternal,
                masquerade: network.driver == "bridge")
        }
        try firewall.apply(FirewallRules.render(FirewallState(table: firewallTable, bridges: bridges, ports: ports)))
    }
}

/// Kernel settings under /proc/sys (of the daemon's network namespace).
enum Sysctl {
    /// Sets `key` unless it already has `value`; false when the kernel refused.
    static func set(_ key: String, _ value: String) -> Bool {
        let path = "/proc/sys/\(key)"
        if (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            == value
        {
            return true
        }
        return (try? FileSystem.writeFile(path, Array(value.utf8))) != nil
    }
}
