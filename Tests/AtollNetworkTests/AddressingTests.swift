import AtollCore
import Testing

@testable import AtollNetwork

/// Addresses, subnets, allocation, `-p` and the files a container gets: pure functions, checked
/// against the answers Docker and the RFCs give.
struct AddressingTests {
    @Test func addressesParseAndPrintInTheirCanonicalForm() {
        #expect(IPv4Address("10.0.0.1")?.description == "10.0.0.1")
        for bad in ["10.0.0", "10.0.0.256", "010.0.0.1", "1.2.3.4.5", "a.b.c.d", ""] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
        #expect(IPv6Address("fd00:0:0:0:0:0:0:1")?.description == "fd00::1")
        #expect(IPv6Address("::")?.description == "::")
        #expect(IPv6Address("2001:db8:0:1:0:0:0:1")?.description == "2001:db8:0:1::1")
        #expect(IPv6Address("::ffff:10.0.0.1")?.description == "::ffff:a00:1")
        for bad in ["1::2::3", "12345::", "fd00:::1", "1:2:3:4:5:6:7:8:9", "fd00:"] {
            #expect(IPv6Address(bad) == nil, "\(bad)")
        }
        #expect(MACAddress(derivedFrom: IPv4Address(0xAC11_0002)).description == "02:42:ac:11:00:02")
        #expect(MACAddress("02:42:AC:11:00:02")?.bytes == [2, 0x42, 0xac, 0x11, 0, 2])
    }

    @Test func subnetsMaskTheirHostBitsAndKnowWhatTheyContain() throws {
        let subnet = try #require(IPNetwork("10.1.2.3/16"))
        #expect(subnet.description == "10.1.0.0/16")
        #expect(subnet.contains(try #require(IPAddress("10.1.255.255"))))
        #expect(!subnet.contains(try #require(IPAddress("10.2.0.0"))))
        #expect(subnet.lastAddress.description == "10.1.255.255")
        #expect(try #require(IPNetwork("10.1.128.0/17")).overlaps(subnet))
        #expect(!(try #require(IPNetwork("10.2.0.0/16")).overlaps(subnet)))
        #expect(try #require(IPNetwork("fd00:1::/64")).contains(try #require(IPAddress("fd00:1::42"))))
        #expect(IPNetwork("10.0.0.0/33") == nil)
        #expect(IPNetwork("10.0.0.0/x") == nil)
    }

    @Test func allocationSkipsTheNetworkBroadcastGatewayAndUsedAddresses() throws {
        let subnet = try #require(IPNetwork("10.0.0.0/29"))
        let gateway = try #require(IPAddress("10.0.0.1"))
        var used = Set<IPAddress>()
        var handed: [String] = []
        while let next = AddressAllocator.allocate(subnet: subnet, pool: subnet, gateway: gateway, used: used) {
            handed.append(next.description)
            used.insert(next)
        }
        #expect(handed == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"])
        let range = try #require(IPNetwork("10.0.0.4/30"))
        #expect(
            AddressAllocator.allocate(subnet: subnet, pool: range, gateway: gateway, used: [])?.description
                == "10.0.0.4")
    }

    @Test func newNetworksTakeTheFirstDefaultPoolNothingOverlaps() throws {
        #expect(AddressAllocator.freeSubnet(avoiding: [])?.description == "172.17.0.0/16")
        let taken = try ["172.17.0.0/16", "172.18.5.0/24"].map { try #require(IPNetwork($0)) }
        #expect(AddressAllocator.freeSubnet(avoiding: taken)?.description == "172.19.0.0/16")
        let everything = try #require(IPNetwork("0.0.0.0/0"))
        #expect(AddressAllocator.freeSubnet(avoiding: [everything]) == nil)
    }

    @Test func portFlagsParseAsDockerReadsThem() throws {
        #expect(try PortSpec.parse("8080:80") == [PortSpec(hostPort: 8080, containerPort: 80)])
        #expect(try PortSpec.parse("80") == [PortSpec(containerPort: 80)])
        #expect(
            try PortSpec.parse("127.0.0.1::53/udp") == [PortSpec(proto: "udp", hostIP: "127.0.0.1", containerPort: 53)])
        #expect(
            try PortSpec.parse("0.0.0.0:1000-1001:2000-2001") == [
                PortSpec(hostPort: 1000, containerPort: 2000), PortSpec(hostPort: 1001, containerPort: 2001),
            ])
        for (bad, why) in [
            ("80/sctp", "sctp is not supported"), ("80/icmp", "unknown protocol"), ("70000", "not a port number"),
            ("1-3:1-2", "ranges differ"), ("x:80", "not a port number"), ("1.2.3:80:80", "not an IP address"),
            ("[::1]:80:80", "only IPv4"), ("9-8", "reversed"),
        ] {
            #expect(throws: AtollError.self, "\(bad)") { try PortSpec.parse(bad) }
            do { _ = try PortSpec.parse(bad) } catch { #expect("\(error)".contains(why), "\(bad): \(error)") }
        }
    }

    @Test func resolvConfPrefersFlagsThenTheEmbeddedServerThenTheHostsNonLoopbackServers() {
        let host = "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions ndots:2\n"
        #expect(
            ResolvConf.render(
                host: host, embeddedServers: [], dns: ["1.1.1.1"], search: [], options: [], hostNetwork: false)
                == "nameserver 1.1.1.1\nsearch corp.example\noptions ndots:2\n")
        #expect(
            ResolvConf.render(
                host: host, embeddedServers: ["172.18.0.1"], dns: [], search: ["a.b"], options: [], hostNetwork: false)
                == "nameserver 172.18.0.1\nsearch a.b\noptions ndots:2\n")
        #expect(
            ResolvConf.render(host: host, embeddedServers: [], dns: [], search: [], options: [], hostNetwork: false)
                .hasPrefix("nameserver 10.0.0.2\n"))
        #expect(
            ResolvConf.render(
                host: "nameserver 127.0.0.53\n", embeddedServers: [], dns: [], search: [], options: [],
                hostNetwork: false)
                == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n")
        #expect(
            ResolvConf.render(
                host: "nameserver 127.0.0.53\n", embeddedServers: [], dns: [], search: [], options: [],
                hostNetwork: true)
                == "nameserver 127.0.0.53\n")
    }

    @Test func hostsFilesListLocalhostExtraHostsAndTheContainersAddresses() throws {
        let file = HostsFile(hostname: "box", extraHosts: ["db:10.0.0.9", "v6=[fd00::9]"])
        let text = file.render(addresses: ["172.17.0.2"])
        #expect(text.hasPrefix("127.0.0.1\tlocalhost\n"))
        #expect(text.contains("10.0.0.9\tdb\nfd00::9\tv6\n172.17.0.2\tbox\n"))
        #expect(file.render(addresses: []).hasSuffix("127.0.1.1\tbox\n"))
        #expect(throws: AtollError.self) { try ExtraHost(parsing: "nohost") }
        #expect(throws: AtollError.self) { try ExtraHost(parsing: "db:999.0.0.1") }
    }

    @Test func overlayIdentifiersAreDerivedTheSameWayOnEveryHost() throws {
        #expect(OverlayOptions.derivedVNI("ov") == OverlayOptions.derivedVNI("ov"))
        #expect(OverlayOptions.derivedVNI("ov") != OverlayOptions.derivedVNI("ov2"))
        #expect((1...0xFF_FFFF).contains(OverlayOptions.derivedVNI("anything")))
        let options = try OverlayOptions.validated(["peers": "10.0.0.2, 10.0.0.3"], name: "ov")
        #expect(options["peers"] == "10.0.0.2,10.0.0.3")
        #expect(options["vni"] == String(OverlayOptions.derivedVNI("ov")))
        #expect(throws: AtollError.self) { try OverlayOptions.validated(["vni": "0"], name: "ov") }
        #expect(throws: AtollError.self) { try OverlayOptions.validated(["peers": "nope"], name: "ov") }
    }
}
