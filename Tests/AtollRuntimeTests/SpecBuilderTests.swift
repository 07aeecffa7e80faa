import Foundation
import Testing

@testable import AtollRuntime

struct SpecBuilderTests {
    func input() -> SpecInput {
        SpecInput(
            rootfs: "/tmp/rootfs", args: ["/bin/sh"], env: ["PATH=/bin"], cwd: "/",
            user: ResolvedUser(uid: 1000, gid: 1000, additionalGids: [10], home: "/home/u"), hostname: "box")
    }

    @Test func aDefaultSpecHasDockersNamespacesCapabilitiesAndMaskedPaths() throws {
        let spec = try SpecBuilder.build(input()) { _ in 20000 }
        #expect(spec.linux.namespaces.map(\.type) == ["pid", "ipc", "uts", "mount", "cgroup", "network"])
        #expect(spec.process.capabilities?.bounding == SecurityDefaults.defaultCapabilities)
        #expect(spec.linux.maskedPaths?.contains("/proc/kcore") == true)
        #expect(spec.linux.readonlyPaths?.contains("/proc/sys") == true)
        #expect(spec.linux.seccomp != nil)
        #expect(spec.process.env.contains("HOME=/home/u"))
        #expect(spec.process.user.additionalGids == [10])
        #expect(spec.mounts.contains { $0.destination == "/dev/shm" && $0.options?.contains("size=67108864") == true })
    }

    @Test func openFilesNeverExceedTheHostsHardLimit() throws {
        let spec = try SpecBuilder.build(input()) { _ in 20000 }
        let nofile = spec.process.rlimits?.first { $0.type == "RLIMIT_NOFILE" }
        #expect(nofile?.hard == 20000)
        #expect(nofile?.soft == 20000)
    }

    @Test func aUlimitAboveTheHostsHardLimitIsRefused() throws {
        var request = input()
        request.ulimits = [try Ulimit(parsing: "nofile=30000:30000")]
        #expect(throws: (any Error).self) { try SpecBuilder.build(request) { _ in 20000 } }
        request.ulimits = [try Ulimit(parsing: "nofile=100:200")]
        let spec = try SpecBuilder.build(request) { _ in 20000 }
        #expect(spec.process.rlimits?.first { $0.type == "RLIMIT_NOFILE" }?.soft == 100)
    }

    @Test func ulimitsAreParsedAsDockerDoes() throws {
        #expect(try Ulimit(parsing: "nproc=10") == Ulimit(name: "nproc", soft: 10, hard: 10))
        #expect(try Ulimit(parsing: "core=-1").hard == UInt64.max)
        #expect(throws: (any Error).self) { try Ulimit(parsing: "nofile=20:10") }
        #expect(throws: (any Error).self) { try Ulimit(parsing: "bogus=1") }
        #expect(throws: (any Error).self) { try Ulimit(parsing: "nofile") }
    }

    @Test func privilegedGetsEveryCapabilityNoSeccompAndWritableSys() throws {
        var request = input()
        request.privileged = true
        let all = Set(SecurityDefaults.allCapabilities)
        let spec = try SpecBuilder.build(request, hostLimit: { _ in 20000 }, hostCapabilities: all)
        #expect(spec.process.capabilities?.bounding == SecurityDefaults.allCapabilities)
        // Only what the daemon's own bounding set holds can be handed on.
        let fewer = try SpecBuilder.build(
            request, hostLimit: { _ in 20000 }, hostCapabilities: all.subtracting(["CAP_SYS_RESOURCE"]))
        #expect(fewer.process.capabilities?.bounding.contains("CAP_SYS_RESOURCE") == false)
        var asking = input()
        asking.capAdd = ["SYS_RESOURCE"]
        #expect(throws: (any Error).self) {
            try SpecBuilder.build(
                asking, hostLimit: { _ in 20000 }, hostCapabilities: all.subtracting(["CAP_SYS_RESOURCE"]))
        }
        #expect(spec.linux.seccomp == nil)
        #expect(spec.linux.maskedPaths == nil)
        #expect(spec.mounts.first { $0.destination == "/sys" }?.options?.contains("ro") == false)
    }

    @Test func limitsBecomeCgroupResources() throws {
        var request = input()
        request.memoryBytes = 64 << 20
        request.nanoCPUs = 1_500_000_000
        request.pidsLimit = 50
        request.readOnly = true
        request.noNewPrivileges = true
        let spec = try SpecBuilder.build(request) { _ in 20000 }
        #expect(spec.linux.resources?.memory?.limit == 64 << 20)
        #expect(spec.linux.resources?.cpu?.quota == 150_000)
        #expect(spec.linux.resources?.pids?.limit == 50)
        #expect(spec.root.readonly == true)
        #expect(spec.process.noNewPrivileges == true)
    }

    @Test func initWrapsTheCommand() throws {
        var request = input()
        request.initBinary = "/usr/bin/catatonit"
        let spec = try SpecBuilder.build(request) { _ in 20000 }
        #expect(spec.process.args == [SpecBuilder.initPath, "--", "/bin/sh"])
        #expect(spec.mounts.contains { $0.destination == SpecBuilder.initPath && $0.source == "/usr/bin/catatonit" })
    }
}

struct UserLookupTests {
    let passwd = UserLookup.parsePasswd("root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n")
    let groups = UserLookup.parseGroup("root:x:0:\nwheel:x:10:root,www\nwww:x:33:\n")

    @Test func namesAndNumbersResolveLikeRunc() throws {
        #expect(try UserLookup.resolve("", passwd: passwd, groups: groups).additionalGids == [10])
        let www = try UserLookup.resolve("www", passwd: passwd, groups: groups)
        #expect(www.uid == 33 && www.gid == 33 && www.home == "/var/www" && www.additionalGids == [10])
        let numeric = try UserLookup.resolve("1234", passwd: passwd, groups: groups)
        #expect(numeric.uid == 1234 && numeric.gid == 0)
        let withGroup = try UserLookup.resolve("www:wheel", passwd: passwd, groups: groups)
        #expect(withGroup.gid == 10)
        #expect(try UserLookup.resolve("5:7", passwd: passwd, groups: groups).gid == 7)
    }

    @Test func unknownNamesAreErrors() {
        #expect(throws: (any Error).self) { try UserLookup.resolve("nobody", passwd: passwd, groups: groups) }
        #expect(throws: (any Error).self) { try UserLookup.resolve("www:nogroup", passwd: passwd, groups: groups) }
    }

    @Test func aSymlinkedPasswdResolvesInsideTheRoot() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("userlookup-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: "\(root)/etc", withIntermediateDirectories: true)
        // An absolute symlink in the image must resolve within the root, not on the host.
        try "u:x:77:77::/u:/bin/sh\n".write(toFile: "\(root)/passwd.real", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: "\(root)/etc/passwd", withDestinationPath: "/passwd.real")
        let user = try UserLookup.resolve("u", rootfs: root)
        #expect(user.uid == 77)
        try FileManager.default.removeItem(atPath: "\(root)/etc/passwd")
        try FileManager.default.createSymbolicLink(atPath: "\(root)/etc/passwd", withDestinationPath: "/etc/shadow")
        #expect(throws: (any Error).self) { try UserLookup.resolve("root2", rootfs: root) }
    }
}

struct SignalsTests {
    @Test func namesNumbersAndPrefixesAllWork() throws {
        #expect(try Signals.number("KILL") == 9)
        #expect(try Signals.number("sigterm") == 15)
        #expect(try Signals.number("SIGHUP") == 1)
        #expect(try Signals.number("10") == 10)
        #expect(throws: (any Error).self) { try Signals.number("NOPE") }
        #expect(throws: (any Error).self) { try Signals.number("0") }
    }

    @Test func runtimeFailuresMapToDockersExitStatuses() {
        #expect(RuntimeFailure(message: "exec: \"x\": executable file not found in $PATH").exitStatus == 127)
        #expect(RuntimeFailure(message: "exec: \"/etc\": permission denied").exitStatus == 126)
        #expect(RuntimeFailure(message: "cgroup trouble").exitStatus == 125)
    }

    @Test func userMountsReplaceDefaultsAtOrBelowThemAndEtcFilesStayOnTop() throws {
        var input = SpecInput(
            rootfs: "/r", args: ["sh"], env: [], cwd: "/",
            user: ResolvedUser(uid: 0, gid: 0, additionalGids: [], home: "/"),
            hostname: "h")
        input.etcFiles = [("/etc/hosts", "/b/hosts"), ("/etc/hostname", "/b/hostname")]
        input.mounts = [
            .init(destination: "/dev/shm", type: "tmpfs", source: "tmpfs", options: ["size=1m"]),
            .init(destination: "/etc", type: "bind", source: "/v/_data", options: ["rbind", "rprivate"]),
            .init(destination: "/etc/hostname", type: "bind", source: "/mine", options: ["rbind", "rprivate"]),
        ]
        let spec = try SpecBuilder.build(
            input, hostLimit: { _ in .max }, hostCapabilities: Set(SecurityDefaults.allCapabilities))
        let destinations = spec.mounts.map(\.destination)
        #expect(destinations.filter { $0 == "/dev/shm" }.count == 1)
        #expect(spec.mounts.first { $0.destination == "/dev/shm" }?.options == ["size=1m"])
        // The engine's /etc/hosts goes above the /etc volume; the user's own /etc/hostname wins.
        #expect(destinations.suffix(4) == ["/dev/shm", "/etc", "/etc/hostname", "/etc/hosts"])
        #expect(spec.mounts.last { $0.destination == "/etc/hostname" }?.source == "/mine")
    }
}
