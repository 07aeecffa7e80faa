import AtollCore
import Foundation
import Testing

@testable import AtollNetwork

/// The ruleset is a pure function of the state; the kernel's own parser accepts what it renders.
struct FirewallRulesTests {
    static let state = FirewallState(
        bridges: [
            .init(
                device: "atoll0", subnets: [IPNetwork("172.17.0.0/16")].compactMap { $0 }, isInternal: false,
                masquerade: true),
            .init(
                device: "atl-secret", subnets: [IPNetwork("10.9.0.0/24")].compactMap { $0 }, isInternal: true,
                masquerade: true),
            .init(
                device: "atl-v6", subnets: [IPNetwork("fd00:1::/64")].compactMap { $0 }, isInternal: false,
                masquerade: true),
        ],
        ports: [
            PortRecord(
                containerID: "c1", proto: "tcp", hostIP: "", hostPort: 8080, containerIP: "172.17.0.2",
                containerPort: 80),
            PortRecord(
                containerID: "c2", proto: "udp", hostIP: "127.0.0.1", hostPort: 5353, containerIP: "172.17.0.3",
                containerPort: 53),
        ])

    @Test func publishedPortsBecomeDNATRulesBoundToTheirAddress() {
        let script = FirewallRules.render(Self.state)
        #expect(script.contains("meta nfproto ipv4 tcp dport 8080 dnat ip to 172.17.0.2:80"))
        #expect(script.contains("ip daddr 127.0.0.1 udp dport 5353 dnat ip to 172.17.0.3:53"))
    }

    @Test func internalNetworksGetNoMasqueradeAndAreFencedIn() {
        let script = FirewallRules.render(Self.state)
        #expect(script.contains("ip saddr 172.17.0.0/16 oifname != \"atoll0\" masquerade"))
        #expect(!script.contains("ip saddr 10.9.0.0/24 oifname != \"atl-secret\" masquerade"))
        #expect(script.contains("iifname \"atl-secret\" oifname != \"atl-secret\" drop"))
        #expect(script.contains("oifname \"atl-secret\" iifname != \"atl-secret\" drop"))
        #expect(script.contains("iifname \"atoll0\" oifname @bridges oifname != \"atoll0\" drop"))
        #expect(script.contains("ip6 saddr fd00:1::/64 oifname != \"atl-v6\" masquerade"))
    }

    @Test func theRenderingReplacesTheWholeTableInOneTransaction() {
        let lines = FirewallRules.render(FirewallState()).split(separator: "\n")
        #expect(lines.prefix(3) == ["table inet atoll {}", "delete table inet atoll", "table inet atoll {"])
    }

    @Test func nftAcceptsTheRenderedScript() throws {
        let file = "/tmp/atoll-nft-check-\(UUID().uuidString.prefix(8)).nft"
        try FirewallRules.render(Self.state).write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let nft = try Subprocess.run("/usr/sbin/nft", ["--check", "-f", file])
        #expect(nft.status == 0, "nft --check: \(nft.stderr)")
    }
}
