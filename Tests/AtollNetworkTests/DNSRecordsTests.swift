import AtollCore
import Foundation
import Testing

@testable import AtollNetwork

struct DNSRecordsTests {
    @Test("names match case-insensitively, with or without a trailing dot")
    func caseInsensitive() throws {
        let records = DNSRecords()
        let address = try #require(IPAddress("10.0.0.2"))
        records.replace(["Web": [address]])
        #expect(records.addresses(for: "web") == [address])
        #expect(records.addresses(for: "WEB.") == [address])
        #expect(records.addresses(for: "web.example") == nil)
        #expect(records.addresses(for: "") == nil)
    }

    @Test("replacing the records drops names not in the new set")
    func replaceDropsOldNames() throws {
        let records = DNSRecords()
        records.replace(["a": [try #require(IPAddress("10.0.0.2"))]])
        records.replace(["b": [try #require(IPAddress("10.0.0.3"))]])
        #expect(records.addresses(for: "a") == nil)
        #expect(records.addresses(for: "b") == [IPAddress("10.0.0.3")].compactMap { $0 })
        #expect(records.name(for: try #require(IPAddress("10.0.0.2"))) == nil)
    }

    @Test("PTR prefers a name that is not a short container ID, or the name given explicitly")
    func reverseNamePreference() throws {
        let address = try #require(IPAddress("10.0.0.2"))
        let records = DNSRecords()
        records.replace(["0123456789ab": [address], "web-server": [address], "www": [address]])
        #expect(records.name(for: address) == "www")
        records.replace(
            ["0123456789ab": [address], "web-server": [address], "www": [address]], reverse: [address: "Web-Server"])
        #expect(records.name(for: address) == "web-server")
        records.replace(["0123456789ab": [address]])
        #expect(records.name(for: address) == "0123456789ab")
    }

    @Test("resolv.conf yields its nameserver lines in order and ignores the rest")
    func resolvConf() throws {
        let text = """
            # generated
            search example.com
            nameserver 10.0.0.53
            nameserver   fd00::53
            ;nameserver 10.9.9.9
            nameserver fe80::1%eth0
            nameserver not-an-address
            options ndots:2 edns0
            nameserver 10.0.0.53
            nameserver\t1.1.1.1 # comment
            """
        let upstream = UpstreamResolvers(resolvConf: text)
        #expect(
            upstream.servers == [
                .init(address: try #require(IPAddress("10.0.0.53"))),
                .init(address: try #require(IPAddress("fd00::53"))),
                .init(address: try #require(IPAddress("1.1.1.1"))),
            ])
        #expect(upstream.servers.allSatisfy { $0.port == 53 })
        #expect(upstream.servers[1].description == "[fd00::53]:53")
    }

    @Test("a missing resolv.conf gives no upstream servers")
    func missingResolvConf() {
        #expect(UpstreamResolvers.fromHost(path: "/nonexistent/resolv.conf").servers.isEmpty)
    }
}
