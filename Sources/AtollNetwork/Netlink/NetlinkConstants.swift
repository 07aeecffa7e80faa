/// Numbers from the kernel's uapi headers (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h,
/// linux/if_addr.h, linux/neighbour.h), spelled out so that no kernel header is needed.
enum Netlink {
    // nlmsghdr.nlmsg_type values shared by every protocol.
    static let noop: UInt16 = 1
    static let error: UInt16 = 2
    static let done: UInt16 = 3
    static let overrun: UInt16 = 4

    // nlmsghdr.nlmsg_flags.
    static let request: UInt16 = 0x01
    static let multi: UInt16 = 0x02
    static let ack: UInt16 = 0x04
    static let dumpInterrupted: UInt16 = 0x10
    static let dump: UInt16 = 0x300
    static let replace: UInt16 = 0x100
    static let exclusive: UInt16 = 0x200
    static let create: UInt16 = 0x400
    static let append: UInt16 = 0x800
    /// On an NLMSG_ERROR: the request was not echoed (NETLINK_CAP_ACK) / TLVs follow.
    static let capped: UInt16 = 0x100
    static let ackTLVs: UInt16 = 0x200

    static let headerLength = 16
    /// nlmsgerr attribute carrying the kernel's extended-ack text.
    static let errorAttributeMessage: UInt16 = 1
}

/// rtnetlink message types.
enum RTM {
    static let newLink: UInt16 = 16
    static let delLink: UInt16 = 17
    static let getLink: UInt16 = 18
    static let newAddress: UInt16 = 20
    static let delAddress: UInt16 = 21
    static let getAddress: UInt16 = 22
    static let newRoute: UInt16 = 24
    static let delRoute: UInt16 = 25
    static let getRoute: UInt16 = 26
    static let newNeighbour: UInt16 = 28
    static let delNeighbour: UInt16 = 29
    static let getNeighbour: UInt16 = 30
}

/// Address families as the kernel numbers them.
enum AF {
    static let unspecified: UInt8 = 0
    static let inet: UInt8 = 2
    static let bridge: UInt8 = 7
    static let inet6: UInt8 = 10
}

/// Link attributes (IFLA_*) and their nested kinds.
enum IFLA {
    static let address: UInt16 = 1
    static let broadcast: UInt16 = 2
    static let name: UInt16 = 3
    static let mtu: UInt16 = 4
    static let link: UInt16 = 5
    static let master: UInt16 = 10
    static let operState: UInt16 = 16
    static let linkInfo: UInt16 = 18
    static let netNSFD: UInt16 = 28

    static let infoKind: UInt16 = 1
    static let infoData: UInt16 = 2

    static let vethPeer: UInt16 = 1

    static let vxlanID: UInt16 = 1
    static let vxlanLink: UInt16 = 3
    static let vxlanLocal: UInt16 = 4
    static let vxlanLearning: UInt16 = 7
    static let vxlanPort: UInt16 = 15
    static let vxlanLocal6: UInt16 = 17

    static let flagUp: UInt32 = 0x1
    static let ifinfomsgLength = 16
}

/// Address attributes (IFA_*).
enum IFA {
    static let address: UInt16 = 1
    static let local: UInt16 = 2
    static let broadcast: UInt16 = 4
    static let flagNoDAD: UInt8 = 0x02
    static let ifaddrmsgLength = 8
}

/// Route attributes (RTA_*) and rtmsg values.
enum RTA {
    static let destination: UInt16 = 1
    static let outputInterface: UInt16 = 4
    static let gateway: UInt16 = 5
    static let priority: UInt16 = 6
    static let table: UInt16 = 15

    static let tableMain: UInt8 = 254
    static let protocolBoot: UInt8 = 3
    static let scopeUniverse: UInt8 = 0
    static let scopeLink: UInt8 = 253
    static let scopeNowhere: UInt8 = 255
    static let typeUnicast: UInt8 = 1
    static let flagCloned: UInt32 = 0x200
    static let rtmsgLength = 12
}

/// Neighbour attributes (NDA_*), states and flags.
enum NDA {
    static let destination: UInt16 = 1
    static let linkLayerAddress: UInt16 = 2

    static let statePermanent: UInt16 = 0x80
    static let flagSelf: UInt8 = 0x02
    static let ndmsgLength = 12
}

/// errno values the layer maps to error codes (Linux numbering).
enum NetlinkErrno {
    static let permissionDenied: Int32 = 1  // EPERM
    static let noEntry: Int32 = 2  // ENOENT
    static let noProcess: Int32 = 3  // ESRCH
    static let accessDenied: Int32 = 13  // EACCES
    static let exists: Int32 = 17  // EEXIST
    static let noDevice: Int32 = 19  // ENODEV
    static let invalid: Int32 = 22  // EINVAL
    static let busy: Int32 = 16  // EBUSY
    static let notSupported: Int32 = 95  // EOPNOTSUPP
    static let noData: Int32 = 61  // ENODATA
    static let addressNotAvailable: Int32 = 99  // EADDRNOTAVAIL
}
