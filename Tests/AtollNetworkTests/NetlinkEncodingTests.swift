import Testing

@testable import AtollNetwork

/// Requests are compared byte for byte with what the kernel's struct layouts (nlmsghdr, ifinfomsg,
/// ifaddrmsg, rtmsg, ndmsg, rtattr) demand; the sizes were cross-checked against `strace ip …`.
struct NetlinkEncodingTests {
    @Test func creatingABridgeSendsNameMTUAndKind() {
        let bytes = RouteRequest.createBridge(name: "atl-br0", mtu: 1450).encoded(sequence: 1)
        #expect(
            bytes
                == netlinkHex(
                    """
                    44000000 1000 0506 01000000 00000000
                    00 00 0000 00000000 00000000 00000000
                    0c00 0300 61746c2d 62723000
                    0800 0400 aa050000
                    1000 1200 0b00 0100 62726964 676500 00
                    """))
    }

    @Test func creatingAVethPutsThePeerInsideItsNamespaceWithItsNameAndMAC() throws {
        let mac = try #require(MACAddress("02:42:0a:00:00:02"))
        let message = RouteRequest.createVeth(
            name: "veth1a2b", master: 3, mtu: 1500, peerName: "eth0", peerNamespaceFD: 7, peerMAC: mac)
        #expect(
            message.encoded(sequence: 0x0102_0304)
                == netlinkHex(
                    """
                    90000000 1000 0506 04030201 00000000
                    00 00 0000 00000000 00000000 00000000
                    0d00 0300 76657468 31613262 00 000000
                    0800 0400 dc050000
                    0800 0a00 03000000
                    5000 1200
                      0900 0100 76657468 00 000000
                      4000 0200
                        3c00 0100
                          00 00 0000 00000000 00000000 00000000
                          0900 0300 65746830 00 000000
                          0800 0400 dc050000
                          0a00 0100 02420a00 0002 0000
                          0800 1c00 07000000
                    """))
    }

    @Test func creatingAVXLANSetsVNILocalUnderlayPortAndNoLearning() throws {
        let local = try #require(IPAddress("192.168.1.10"))
        let message = RouteRequest.createVXLAN(
            name: "atl-vx100", vni: 100, local: local, underlay: 2, port: 4789, mtu: 1450, master: nil)
        #expect(
            message.encoded(sequence: 2)
                == netlinkHex(
                    """
                    74000000 1000 0506 02000000 00000000
                    00 00 0000 00000000 00000000 00000000
                    0e00 0300 61746c2d 76783130 3000 0000
                    0800 0400 aa050000
                    3c00 1200
                      0a00 0100 7678 6c61 6e00 0000
                      2c00 0200
                        0800 0100 64000000
                        0800 0400 c0a8010a
                        0800 0300 02000000
                        0600 0f00 12b5 0000
                        0500 0700 00 000000
                    """))
    }

    @Test func anIPv6VXLANUsesTheLocal6Attribute() throws {
        let local = try #require(IPAddress("fd00::1"))
        let bytes = RouteRequest.createVXLAN(
            name: "vx", vni: 1, local: local, underlay: nil, port: 4789, mtu: nil, master: 9
        ).encoded(sequence: 1)
        let payload = NetlinkAttributes(bytes[32...])
        #expect(payload.int32(IFLA.master) == 9)
        let data = try #require(payload.nested(IFLA.linkInfo)?.nested(IFLA.infoData))
        #expect(data[IFLA.vxlanLocal6] == local.bytes)
        #expect(data[IFLA.vxlanLocal] == nil)
        #expect(data[IFLA.vxlanLink] == nil)
    }

    @Test func addingAnIPv4AddressSetsLocalAddressAndBroadcast() throws {
        let address = try #require(IPAddress("10.88.0.2"))
        #expect(
            RouteRequest.addAddress(address, prefixLength: 16, index: 5).encoded(sequence: 3)
                == netlinkHex(
                    """
                    30000000 1400 0506 03000000 00000000
                    02 10 00 00 05000000
                    0800 0200 0a580002
                    0800 0100 0a580002
                    0800 0400 0a58ffff
                    """))
    }

    @Test func addingAnIPv6AddressSkipsDuplicateAddressDetection() throws {
        let address = try #require(IPAddress("fd00::2"))
        #expect(
            RouteRequest.addAddress(address, prefixLength: 64, index: 5).encoded(sequence: 4)
                == netlinkHex(
                    """
                    40000000 1400 0506 04000000 00000000
                    0a 40 02 00 05000000
                    1400 0200 fd000000 00000000 00000000 00000002
                    1400 0100 fd000000 00000000 00000000 00000002
                    """))
    }

    @Test func addingADefaultRouteNamesGatewayAndDevice() throws {
        let gateway = try #require(IPAddress("10.88.0.1"))
        let message = RouteRequest.addRoute(destination: nil, gateway: gateway, index: 5, family: AF.inet)
        #expect(
            message.encoded(sequence: 5)
                == netlinkHex(
                    """
                    2c000000 1800 0506 05000000 00000000
                    02 00 00 00 fe 03 00 01 00000000
                    0800 0500 0a580001
                    0800 0400 05000000
                    """))
    }

    @Test func anOnLinkRouteHasLinkScopeAndItsDestination() throws {
        let destination = try #require(IPNetwork("10.88.0.0/16"))
        let message = RouteRequest.addRoute(destination: destination, gateway: nil, index: 5, family: AF.inet)
        #expect(
            message.encoded(sequence: 6)
                == netlinkHex(
                    """
                    2c000000 1800 0506 06000000 00000000
                    02 10 00 00 fe 03 fd 01 00000000
                    0800 0100 0a580000
                    0800 0400 05000000
                    """))
    }

    @Test func deletingARouteMatchesAnyScopeProtocolAndType() throws {
        let gateway = try #require(IPAddress("10.88.0.1"))
        let message = RouteRequest.deleteRoute(destination: nil, gateway: gateway, index: nil, family: AF.inet)
        #expect(
            message.encoded(sequence: 7)
                == netlinkHex(
                    """
                    24000000 1900 0500 07000000 00000000
                    02 00 00 00 fe 00 ff 00 00000000
                    0800 0500 0a580001
                    """))
    }

    @Test func addingANeighbourReplacesAPermanentEntry() throws {
        let address = try #require(IPAddress("10.88.0.3"))
        let mac = try #require(MACAddress("02:42:0a:58:00:03"))
        #expect(
            RouteRequest.addNeighbour(address, mac: mac, index: 5).encoded(sequence: 8)
                == netlinkHex(
                    """
                    30000000 1c00 0505 08000000 00000000
                    02 00 0000 05000000 8000 00 00
                    0800 0100 0a580003
                    0a00 0200 02420a58 0003 0000
                    """))
    }

    @Test func appendingAFloodEntryAddsOneMoreRemoteVTEP() throws {
        let destination = try #require(IPAddress("192.168.1.11"))
        #expect(
            RouteRequest.addFDB(mac: .zero, destination: destination, index: 6).encoded(sequence: 9)
                == netlinkHex(
                    """
                    30000000 1c00 050c 09000000 00000000
                    07 00 0000 06000000 8000 02 00
                    0a00 0200 00000000 0000 0000
                    0800 0100 c0a8010b
                    """))
    }

    @Test func aUnicastForwardingEntryReplacesRatherThanAppends() throws {
        let destination = try #require(IPAddress("192.168.1.11"))
        let mac = try #require(MACAddress("02:42:0a:00:00:05"))
        let message = RouteRequest.addFDB(mac: mac, destination: destination, index: 6)
        #expect(message.flags == Netlink.request | Netlink.ack | Netlink.create | Netlink.replace)
    }

    @Test func setRequestsChangeOnlyWhatTheyName() throws {
        #expect(
            RouteRequest.setLink(index: 4, up: true).encoded(sequence: 10)
                == netlinkHex(
                    """
                    20000000 1000 0500 0a000000 00000000
                    00 00 0000 04000000 01000000 01000000
                    """))
        #expect(
            RouteRequest.setMaster(index: 4, master: nil).encoded(sequence: 11)
                == netlinkHex(
                    """
                    28000000 1000 0500 0b000000 00000000
                    00 00 0000 04000000 00000000 00000000
                    0800 0a00 00000000
                    """))
    }

    @Test func dumpsAskForEverythingAndNoAcknowledgement() {
        #expect(
            RouteRequest.dumpLinks().encoded(sequence: 12)
                == netlinkHex(
                    """
                    20000000 1200 0103 0c000000 00000000
                    00 00 0000 00000000 00000000 00000000
                    """))
        #expect(
            RouteRequest.dumpFDB().encoded(sequence: 13)
                == netlinkHex(
                    """
                    1c000000 1e00 0103 0d000000 00000000
                    07 00 0000 00000000 0000 00 00
                    """))
    }
}

/// Bytes from hex text; spaces and line breaks are ignored.
func netlinkHex(_ text: String) -> [UInt8] {
    let digits = Array(text.filter(\.isHexDigit))
    return stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(digits[$0...$0 + 1]), radix: 16) }
}
