/// The inputs of Atoll's nftables table: the bridges with their subnets, and the published ports.
public struct FirewallState: Sendable, Equatable {
    public struct Bridge: Sendable, Equatable {
        public var device: String
        public var subnets: [IPNetwork]
        /// Internal networks reach nothing outside their bridge, and nothing reaches them.
        public var isInternal: Bool
        /// Outbound traffic leaves with the host's address (not for overlays, which have no way out).
        public var masquerade: Bool

        public init(device: String, subnets: [IPNetwork], isInternal: Bool, masquerade: Bool) {
            self.device = device
            self.subnets = subnets
            self.isInternal = isInternal
            self.masquerade = masquerade
        }
    }

    /// The table's name (in the inet family): one per daemon.
    public var table: String
    public var bridges: [Bridge]
    public var ports: [PortRecord]

    public init(table: String = "atoll", bridges: [Bridge] = [], ports: [PortRecord] = []) {
        self.table = table
        self.bridges = bridges
        self.ports = ports
    }
}

/// Renders a daemon's whole table (`inet atoll` by default) from the state. The table is replaced in one nftables
/// transaction each time, so the rules are always exactly what the state says: no stale rule
/// can survive a crash, and a restart restores them by rendering again.
public enum FirewallRules {
    public static func render(_ state: FirewallState) -> String {
        let table = state.table
        let bridges = state.bridges.sorted { $0.device < $1.device }
        var lines: [String] = [
            "table inet \(table) {}",
            "delete table inet \(table)",
            "table inet \(table) {",
        ]
        let names = bridges.map { quote($0.device) }
        lines.append("    set bridges {")
        lines.append("        type ifname")
        if !names.isEmpty { lines.append("        elements = { \(names.joined(separator: ", ")) }") }
        lines.append("    }")

        // Published ports: traffic to a local address (from outside, from containers, and from
        // the host itself through the output hook) is sent to the container.
        lines.append(contentsOf: [
            "    chain prerouting {",
            "        type nat hook prerouting priority dstnat; policy accept;",
            "        fib daddr type local jump published",
            "    }",
            "    chain output {",
            "        type nat hook output priority -100; policy accept;",
            "        fib daddr type local jump published",
            "    }",
            "    chain published {",
        ])
        let ports = state.ports.sorted { ($0.proto, $0.hostPort, $0.hostIP) < ($1.proto, $1.hostPort, $1.hostIP) }
        for port in ports {
            let match = port.hostIP.isEmpty ? "meta nfproto ipv4" : "ip daddr \(port.hostIP)"
            lines.append(
                "        \(match) \(port.proto) dport \(port.hostPort) dnat ip to \(port.containerIP):\(port.containerPort)"
            )
        }
        lines.append("    }")

        lines.append(contentsOf: [
            "    chain postrouting {",
            "        type nat hook postrouting priority srcnat; policy accept;",
        ])
        for bridge in bridges {
            let device = quote(bridge.device)
            for subnet in bridge.subnets {
                let family = subnet.isIPv4 ? "ip" : "ip6"
                if bridge.masquerade && !bridge.isInternal {
                    lines.append("        \(family) saddr \(subnet) oifname != \(device) masquerade")
                }
                // A container reaching a published port of its own bridge through a host address:
                // without the rewrite the answer would skip the NAT and be dropped.
                lines.append("        oifname \(device) \(family) saddr \(subnet) ct status dnat masquerade")
            }
            // The host reaching a published port through 127.0.0.1 (route_localnet is on for the bridge).
            lines.append("        oifname \(device) ip saddr 127.0.0.0/8 masquerade")
        }
        lines.append("    }")

        lines.append(contentsOf: [
            "    chain forward {",
            "        type filter hook forward priority filter; policy accept;",
        ])
        for bridge in bridges {
            let device = quote(bridge.device)
            if bridge.isInternal {
                lines.append("        iifname \(device) oifname != \(device) drop")
                lines.append("        oifname \(device) iifname != \(device) drop")
            } else {
                // Networks are isolated from each other, as Docker's are.
                lines.append("        iifname \(device) oifname @bridges oifname != \(device) drop")
            }
        }
        lines.append("    }")
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    private static func quote(_ name: String) -> String { "\"\(name)\"" }
}
