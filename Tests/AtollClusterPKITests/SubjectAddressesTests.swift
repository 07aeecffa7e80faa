import SwiftASN1
import Testing
import X509

@testable import AtollClusterPKI

@Suite("Subject addresses")
struct SubjectAddressesTests {
    @Test(
        "ip literals become 4 or 16 network-order bytes",
        arguments: [
            ("10.0.0.1", [10, 0, 0, 1]),
            ("0.0.0.0", [0, 0, 0, 0]),
            ("255.255.255.255", [255, 255, 255, 255]),
            ("::", [UInt8](repeating: 0, count: 16)),
            ("::1", [UInt8](repeating: 0, count: 15) + [1]),
            ("[::1]", [UInt8](repeating: 0, count: 15) + [1]),
            ("fd00::7", [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [7]),
            ("fe80::", [0xfe, 0x80] + [UInt8](repeating: 0, count: 14)),
            ("1:2:3:4:5:6:7:8", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]),
            ("::ffff:10.0.0.1", [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 10, 0, 0, 1]),
            ("1:2:3:4:5:6:10.0.0.1", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 10, 0, 0, 1]),
            ("2001:DB8::a", [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [0x0a]),
        ] as [(String, [UInt8])]
    )
    func ipLiterals(text: String, bytes: [UInt8]) {
        #expect(SubjectAddresses.ipAddressBytes(text) == bytes)
    }

    @Test(
        "anything else is not an ip literal",
        arguments: [
            "", "10.0.0", "10.0.0.1.2", "10.0.0.256", "010.0.0.1", "10.0.0.+1", "1::2::3", ":::", "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7", "12345::", "g::1", "+1::", "::1.2.3", "10.0.0.1::", "fe80::1%eth0", "[::1", "localhost",
        ]
    )
    func notIPLiterals(text: String) {
        #expect(SubjectAddresses.ipAddressBytes(text) == nil)
    }

    @Test("addresses map to ip and dns sans, lower-cased and without duplicates")
    func generalNames() throws {
        let names = try SubjectAddresses.generalNames(for: [
            "Node-1.Example", "10.0.0.1", "node-1.example", "*.svc.atoll", "10.0.0.1", "::1",
        ])
        #expect(
            names == [
                .dnsName("node-1.example"),
                .ipAddress(ASN1OctetString(contentBytes: [10, 0, 0, 1])),
                .dnsName("*.svc.atoll"),
                .ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))),
            ]
        )
    }
}
