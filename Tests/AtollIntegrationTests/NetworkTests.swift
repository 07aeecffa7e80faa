import Foundation
import Glibc
import Testing

/// Networking through the real CLI, daemon, netlink, nftables and embedded DNS, each daemon in a
/// network namespace of its own (a lab host), with a second namespace as "another host". Every
/// test compares the host's links, addresses and ruleset before and after.
@Suite(.serialized) struct NetworkTests {
    /// A namespace joined to the daemon's by a veth pair: the daemon's side is 10.213.9.1, this
    /// one's 10.213.9.2 (no route to any container subnet: answers reach containers only by NAT).
    final class OtherHost {
        let name = "atoll-it-peer-\(UUID().uuidString.prefix(6).lowercased())"

        init(joining daemon: DaemonFixture) throws {
            guard let namespace = daemon.namespace else { throw FixtureError("the daemon needs its own namespace") }
            let veth = "p\(name.suffix(6))"
            let made = DaemonFixture.shell(
                """
                ip netns add \(name) && ip -n \(name) link set lo up &&
                ip link add \(veth) netns \(namespace) type veth peer name eth0 netns \(name) &&
                ip -n \(namespace) addr add 10.213.9.1/24 dev \(veth) && ip -n \(namespace) link set \(veth) up &&
                ip -n \(name) addr add 10.213.9.2/24 dev eth0 && ip -n \(name) link set eth0 up
                """)
            guard made.status == 0 else { throw FixtureError("cannot make the other host: \(made.stderr)") }
        }

        func run(_ command: String) -> DaemonFixture.Result {
            DaemonFixture.run("/usr/bin/nsenter", ["--net=/run/netns/\(name)", "/bin/bash", "-c", command])
        }

        deinit { _ = DaemonFixture.shell("ip netns delete \(name)") }
    }

    /// Links, addresses and Atoll's rules in the daemon's namespace, to compare before and after.
    static func networkState(_ daemon: DaemonFixture) -> String {
        daemon.inNetwork(
            "ip -o link show | awk '{print $2}' | sed 's/@.*//' | sort; ip -o addr show | awk '{print $2, $4}' | sort; nft list ruleset"
        ).stdout
    }

    /// The state once the kernel has deleted the veth pairs of containers that went (it does that
    /// in the background when their namespaces go): the same twice, 200 ms apart.
    static func settledNetworkState(_ daemon: DaemonFixture) -> String {
        var last = networkState(daemon)
        for _ in 0..<50 {
            usleep(200_000)
            let now = networkState(daemon)
            if now == last { return now }
            last = now
        }
        return last
    }

    static func http(_ daemon: DaemonFixture, _ url: String) -> String {
        daemon.inNetwork("curl -s -m 3 \(url)").stdout
    }

    @Test func theDefaultBridgeGivesAddressesNATAndPublishedPortsAndLeavesNothingBehind() throws {
        let daemon = try DaemonFixture(isolatedNetwork: true)
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let other = try OtherHost(joining: daemon)
        let before = Self.networkState(daemon)

        // A container on the default bridge: eth0 with an address of the bridge's subnet, a
        // default route through the gateway, and files naming it.
        let look = daemon.atoll([
            "run", "--rm", "-h", "box", "busybox", "sh", "-c", "ip -o -4 addr show eth0; ip route; cat /etc/hosts",
        ])
        #expect(look.status == 0, "\(look.stderr)")
        #expect(look.stdout.contains("eth0    inet 172."), "\(look.stdout)")
        #expect(look.stdout.contains("default via 172."))
        #expect(look.stdout.contains("\tbox\n"))

        // Outbound traffic leaves with the host's address: the other host has no route to containers.
        let ping = daemon.atoll(["run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", "10.213.9.2"])
        #expect(ping.status == 0, "\(ping.stdout)\(ping.stderr)")

        // Published ports: on every address, and on one address only.
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "web", "-p", "8080:80", "-p", "127.0.0.1:8081:80", "busybox", "httpd", "-f",
                "-p", "80", "-h", "/etc",
            ])
            .status == 0)
        let id = daemon.atoll(["inspect", "-f", "{{.Id}}", "web"]).stdout.prefix(12)
        #expect(Self.http(daemon, "http://127.0.0.1:8080/hostname") == "\(id)\n")
        #expect(Self.http(daemon, "http://127.0.0.1:8081/hostname") == "\(id)\n")
        #expect(other.run("curl -s -m 3 http://10.213.9.1:8080/hostname").stdout == "\(id)\n")
        #expect(other.run("curl -s -m 2 http://10.213.9.1:8081/hostname").status != 0)
        let port = daemon.atoll(["port", "web"]).stdout
        #expect(port.contains("80/tcp -> 0.0.0.0:8080\n") && port.contains("80/tcp -> 127.0.0.1:8081\n"), "\(port)")
        #expect(daemon.atoll(["port", "web", "81"]).stderr.contains("no public port '81/tcp' published for web"))
        let ps = daemon.atoll(["ps", "--format", "{{.Ports}}"]).stdout
        #expect(ps.contains("0.0.0.0:8080->80/tcp") && ps.contains("127.0.0.1:8081->80/tcp"), "\(ps)")
        #expect(
            daemon.atoll(["inspect", "-f", "{{json .NetworkSettings.Ports}}", "web"]).stdout.contains(
                "\"HostPort\":\"8080\""))

        // -P publishes what the image exposes; here nothing, so a -p with no host port picks one.
        #expect(
            daemon.atoll(["run", "-d", "--name", "any", "-p", "80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"])
                .status == 0)
        let ports = daemon.atoll(["inspect", "-f", "{{json .NetworkSettings.Ports}}", "any"]).stdout
        let hostPort = ports.split(separator: "\"").first { Int($0).map { (32768...60999).contains($0) } == true }
        #expect(hostPort != nil, "\(ports)")
        if let hostPort { #expect(other.run("curl -s -m 3 http://10.213.9.1:\(hostPort)/hostname").status == 0) }

        // A port another container holds, or a program on the host: refused, nothing left behind.
        let mid = Self.settledNetworkState(daemon)
        let taken = daemon.atoll(["run", "--rm", "-p", "8080:80", "busybox", "true"])
        #expect(taken.status == 125)
        #expect(taken.stderr.contains("bind for 0.0.0.0:8080 failed: port is already allocated"), "\(taken.stderr)")
        let listener = Process()
        listener.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        listener.arguments = ["--net=/run/netns/\(daemon.namespace ?? "")", "busybox", "nc", "-l", "-p", "9090"]
        try listener.run()
        defer {
            kill(listener.processIdentifier, SIGKILL)
            listener.waitUntilExit()
        }
        #expect(DaemonFixture.eventually(5) { daemon.inNetwork("ss -ltn | grep -q :9090").status == 0 })
        let busy = daemon.atoll(["run", "--rm", "-p", "9090:80", "busybox", "true"])
        #expect(busy.stderr.contains("port is already in use on the host"), "\(busy.stderr)")
        #expect(Self.networkState(daemon) == mid)

        #expect(daemon.atoll(["rm", "-f", "web", "any"]).status == 0)
        #expect(DaemonFixture.eventually(10) { Self.networkState(daemon) == before })
        #expect((try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.runDirectory)/netns")) == [])
    }

    @Test func userDefinedNetworksResolveNamesAreIsolatedAndCheckTheirInput() throws {
        let daemon = try DaemonFixture(isolatedNetwork: true)
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let other = try OtherHost(joining: daemon)
        let before = Self.networkState(daemon)

        #expect(
            daemon.atoll([
                "network", "create", "--subnet", "10.88.0.0/24", "--gateway", "10.88.0.254", "--ip-range",
                "10.88.0.64/26",
                "--opt", "mtu=1400", "--label", "app=shop", "front",
            ]).status == 0)
        #expect(daemon.atoll(["network", "create", "back"]).status == 0)
        #expect(daemon.atoll(["network", "create", "--internal", "--subnet", "10.89.0.0/24", "vault"]).status == 0)
        #expect(
            daemon.atoll(["network", "ls", "--format", "{{.Name}}", "--filter", "type=custom"]).stdout
                == "back\nfront\nvault\n")
        #expect(
            daemon.atoll(["network", "inspect", "-f", "{{json .IPAM.Config}}", "front"]).stdout.contains(
                "\"IPRange\":\"10.88.0.64/26\""))

        // Addresses come from the range; --ip picks one; the MTU reaches the container.
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "db", "--network", "front", "--network-alias", "database", "busybox", "sleep",
                "300",
            ]).status == 0)
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "api", "--network", "front", "--ip", "10.88.0.10", "busybox", "sleep", "300",
            ]).status == 0)
        #expect(
            daemon.atoll(["inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}}", "db"]).stdout
                == "10.88.0.64\n")
        #expect(daemon.atoll(["exec", "api", "cat", "/sys/class/net/eth0/mtu"]).stdout == "1400\n")

        // Names and aliases resolve on the network, through the embedded DNS on its gateway.
        let resolve = daemon.atoll([
            "exec", "api", "sh", "-c", "cat /etc/resolv.conf; nslookup database; ping -c1 -W2 db",
        ])
        #expect(resolve.stdout.contains("nameserver 10.88.0.254"), "\(resolve.stdout)")
        #expect(resolve.stdout.contains("Address: 10.88.0.64"), "\(resolve.stdout)")
        #expect(resolve.stdout.contains("1 packets received"), "\(resolve.stdout)")

        // Networks are isolated from each other; connect joins one at once, and its DNS follows.
        #expect(
            daemon.atoll(["run", "-d", "--name", "cache", "--network", "back", "busybox", "sleep", "300"]).status == 0)
        let cacheIP = daemon.atoll(["inspect", "-f", "{{.NetworkSettings.Networks.back.IPAddress}}", "cache"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(daemon.atoll(["exec", "api", "ping", "-c1", "-W1", cacheIP]).status != 0)
        #expect(daemon.atoll(["network", "connect", "--alias", "kv", "back", "api"]).status == 0)
        let joined = daemon.atoll([
            "exec", "api", "sh", "-c", "ip -o -4 addr show eth1; ping -c1 -W2 kv; ping -c1 -W2 cache",
        ])
        #expect(joined.status == 0, "\(joined.stdout)\(joined.stderr)")
        #expect(daemon.atoll(["network", "disconnect", "back", "api"]).status == 0)
        #expect(daemon.atoll(["exec", "api", "ip", "link", "show", "eth1"]).status != 0)
        #expect(daemon.atoll(["exec", "cache", "nslookup", "api"]).status != 0)

        // An internal network reaches nothing outside; a normal one does.
        #expect(
            daemon.atoll(["run", "--rm", "--network", "vault", "busybox", "ping", "-c1", "-W1", "10.213.9.2"]).status
                != 0)
        #expect(
            daemon.atoll(["run", "--rm", "--network", "back", "busybox", "ping", "-c1", "-W2", "10.213.9.2"]).status
                == 0)
        _ = other

        // A dual-stack network: both families' addresses, routes, and AAAA answers.
        #expect(
            daemon.atoll(["network", "create", "--subnet", "10.93.0.0/24", "--subnet", "fd00:93::/64", "dual"]).status
                == 0)
        #expect(
            daemon.atoll(["run", "-d", "--name", "v6", "--network", "dual", "busybox", "sleep", "300"]).status == 0)
        let dual = daemon.atoll(["exec", "v6", "sh", "-c", "ip -o addr show eth0; ip -6 route"])
        #expect(
            dual.stdout.contains("inet 10.93.0.2/24") && dual.stdout.contains("inet6 fd00:93::2/64"), "\(dual.stdout)")
        #expect(dual.stdout.contains("default via fd00:93::1"), "\(dual.stdout)")
        let aaaa = daemon.atoll(["run", "--rm", "--network", "dual", "busybox", "nslookup", "-type=aaaa", "v6"])
        #expect(aaaa.stdout.contains("fd00:93::2"), "\(aaaa.stdout)")
        #expect(daemon.atoll(["rm", "-f", "v6"]).status == 0)
        #expect(daemon.atoll(["network", "rm", "dual"]).status == 0)

        // Bad input: one clear line each, nothing made.
        let mid = Self.settledNetworkState(daemon)
        let overlap = daemon.atoll(["network", "create", "--subnet", "10.88.0.128/25", "clash"])
        #expect(overlap.stderr.contains("overlaps 10.88.0.0/24"), "\(overlap.stderr)")
        #expect(daemon.atoll(["network", "create", "front"]).stderr.contains("network with name front already exists"))
        #expect(
            daemon.atoll(["network", "create", "--subnet", "10.90.0.0/24", "--gateway", "10.91.0.1", "gw1"]).stderr
                .contains("is not an address of subnet"))
        #expect(
            daemon.atoll(["network", "create", "--subnet", "banana", "bad1"]).stderr.contains(
                "invalid subnet \"banana\""))
        let outside = daemon.atoll(["run", "--rm", "--network", "front", "--ip", "10.99.0.5", "busybox", "true"])
        #expect(outside.status == 125)
        #expect(outside.stderr.contains("outside the subnets of network front"), "\(outside.stderr)")
        let twice = daemon.atoll(["run", "--rm", "--network", "front", "--ip", "10.88.0.10", "busybox", "true"])
        #expect(twice.stderr.contains("address 10.88.0.10 is already in use on network front"), "\(twice.stderr)")
        let inUse = daemon.atoll(["network", "rm", "front"])
        #expect(inUse.stderr.contains("has active endpoints"), "\(inUse.stderr)")
        #expect(daemon.atoll(["network", "rm", "bridge"]).stderr.contains("pre-defined network"))
        #expect(
            daemon.atoll(["run", "--rm", "--network", "nope", "busybox", "true"]).stderr.contains(
                "network nope not found"))
        #expect(Self.networkState(daemon) == mid)

        #expect(daemon.atoll(["rm", "-f", "db", "api", "cache"]).status == 0)
        #expect(daemon.atoll(["network", "rm", "front", "back"]).status == 0)
        #expect(daemon.atoll(["network", "prune", "-f"]).stdout == "Deleted Networks:\nvault\n")
        #expect(DaemonFixture.eventually(10) { Self.networkState(daemon) == before })
    }

    @Test func publishedPortsAndNamesSurviveADaemonCrash() throws {
        let daemon = try DaemonFixture(isolatedNetwork: true)
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        #expect(daemon.atoll(["network", "create", "--subnet", "10.92.0.0/24", "app"]).status == 0)
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "web", "--network", "app", "-p", "8080:80", "busybox", "httpd", "-f", "-p", "80",
                "-h", "/etc",
            ])
            .status == 0)
        let id = daemon.atoll(["inspect", "-f", "{{.Id}}", "web"]).stdout.prefix(12)

        daemon.crash()
        // Even a ruleset wiped meanwhile comes back with the daemon.
        #expect(
            daemon.inNetwork("nft delete table inet atoll_\(daemon.bridge.replacingOccurrences(of: "-", with: "_"))")
                .status == 0)
        try daemon.start()
        #expect(DaemonFixture.eventually(5) { Self.http(daemon, "http://127.0.0.1:8080/hostname") == "\(id)\n" })
        let lookup = daemon.atoll(["run", "--rm", "--network", "app", "busybox", "nslookup", "web"])
        #expect(lookup.stdout.contains("Address: 10.92.0.2"), "\(lookup.stdout)\(lookup.stderr)")

        // Stopping the container takes its rule and address away.
        #expect(daemon.atoll(["stop", "-t", "1", "web"]).status == 0)
        #expect(!daemon.inNetwork("nft list ruleset").stdout.contains("dport 8080"))
        #expect(daemon.atoll(["start", "web"]).status == 0)
        #expect(DaemonFixture.eventually(5) { Self.http(daemon, "http://127.0.0.1:8080/hostname") == "\(id)\n" })
    }

    @Test func anOverlayJoinsContainersOnTwoLabHostsAndFollowsItsPeers() throws {
        let lab = "/tmp/atoll-it-lab-\(UUID().uuidString.prefix(6).lowercased())"
        let environment = [
            "ATOLL_LAB": lab, "ATOLLD": "\(DaemonFixture.binDirectory)/atolld",
            "ATOLL": "\(DaemonFixture.binDirectory)/atoll",
        ]
        let script = "\(DaemonFixture.packageRoot)/deploy/lab"
        let up = DaemonFixture.run(script, ["up", "2"], environment: environment)
        defer {
            let down = DaemonFixture.run(script, ["down"], environment: environment)
            #expect(down.status == 0, "\(down.stderr)")
            #expect(!DaemonFixture.shell("ip netns list").stdout.contains("atoll-lab-"))
            #expect(DaemonFixture.shell("ip link show atoll-lab").status != 0)
            #expect(!FileManager.default.fileExists(atPath: lab))
        }
        try #require(up.status == 0, "\(up.stdout)\(up.stderr)")
        func atoll(_ host: Int, _ arguments: [String]) -> DaemonFixture.Result {
            DaemonFixture.run(
                "\(DaemonFixture.binDirectory)/atoll", arguments,
                environment: ["ATOLL_HOST": "unix://\(lab)/host\(host)/atolld.sock"])
        }
        for host in 1...2 {
            #expect(atoll(host, ["load", "-i", BusyboxArchive.path]).status == 0)
            let peer = host == 1 ? "10.213.0.12" : "10.213.0.11"
            let create = atoll(
                host,
                [
                    "network", "create", "-d", "overlay", "--subnet", "10.60.0.0/24", "--ip-range",
                    host == 1 ? "10.60.0.0/26" : "10.60.0.64/26", "--opt", "peers=\(peer)", "ov",
                ])
            #expect(create.status == 0, "\(create.stderr)")
        }
        #expect(
            atoll(1, ["network", "inspect", "-f", "{{.Options.vni}}", "ov"]).stdout
                == atoll(2, ["network", "inspect", "-f", "{{.Options.vni}}", "ov"]).stdout)
        #expect(
            atoll(
                1,
                ["run", "-d", "--name", "left", "--network", "ov", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]
            ).status == 0)
        let leftIP = atoll(1, ["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "left"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(leftIP == "10.60.0.1")
        let id = atoll(1, ["inspect", "-f", "{{.Id}}", "left"]).stdout.prefix(12)

        // A container on the other host reaches it by IP, through the VXLAN tunnel (MTU 1450).
        let reach = atoll(
            2,
            [
                "run", "--rm", "--network", "ov", "busybox", "sh", "-c",
                "cat /sys/class/net/eth0/mtu; ping -c1 -W2 \(leftIP) >/dev/null && printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 \(leftIP) 80 | tail -1",
            ])
        #expect(reach.stdout == "1450\n\(id)\n", "\(reach.stdout)\(reach.stderr)")

        // Removing the peer cuts the tunnel at once; adding it back restores it.
        #expect(atoll(2, ["network", "update", "--rm-peer", "10.213.0.11", "ov"]).status == 0)
        #expect(atoll(2, ["run", "--rm", "--network", "ov", "busybox", "ping", "-c1", "-W1", leftIP]).status != 0)
        #expect(atoll(2, ["network", "update", "--add-peer", "10.213.0.11", "ov"]).status == 0)
        #expect(atoll(2, ["run", "--rm", "--network", "ov", "busybox", "ping", "-c1", "-W2", leftIP]).status == 0)
        let bad = atoll(2, ["network", "update", "--rm-peer", "10.213.0.99", "ov"])
        #expect(bad.stderr.contains("10.213.0.99 is not a peer of network ov"), "\(bad.stderr)")
    }
}
