import AtollCore
import Foundation
import Glibc

/// Everything a container's config.json is made from, already resolved: the command merged with
/// the image config, the user looked up, limits parsed.
public struct SpecInput: Sendable {
    public var rootfs: String
    public var args: [String]
    public var env: [String]
    public var cwd: String
    public var user: ResolvedUser
    public var hostname: String
    public var terminal: Bool
    public var readOnly: Bool
    public var privileged: Bool
    public var capAdd: [String]
    public var capDrop: [String]
    public var noNewPrivileges: Bool
    /// false for `--security-opt seccomp=unconfined`.
    public var seccomp: Bool
    public var memoryBytes: Int64
    public var nanoCPUs: Int64
    public var pidsLimit: Int64
    public var shmSizeBytes: Int64
    public var ulimits: [Ulimit]
    /// The cgroup (relative to each hierarchy's root).
    public var cgroupsPath: String
    /// A static init binary on the host to run as PID 1 (`--init`), or nil.
    public var initBinary: String?
    /// Files the engine made for the container (hostname, hosts), bind-mounted read-write.
    public var etcFiles: [(destination: String, source: String)]
    /// Volumes, binds and tmpfs mounts, destinations already resolved inside the root. They
    /// replace a default mount at or below their destination, and an etc file at it.
    public var mounts: [RuntimeSpec.Mount]
    /// A network namespace to join (nil: a new one, with loopback only).
    public var networkNamespace: String?
    /// The host's network namespace (`--network host`): no network namespace entry at all.
    public var hostNetwork = false
    public var annotations: [String: String]

    public init(rootfs: String, args: [String], env: [String], cwd: String, user: ResolvedUser, hostname: String) {
        self.rootfs = rootfs
        self.args = args
        self.env = env
        self.cwd = cwd
        self.user = user
        self.hostname = hostname
        terminal = false
        readOnly = false
        privileged = false
        capAdd = []
        capDrop = []
        noNewPrivileges = false
        seccomp = true
        memoryBytes = 0
        nanoCPUs = 0
        pidsLimit = 0
        shmSizeBytes = 0
        ulimits = []
        cgroupsPath = ""
        initBinary = nil
        etcFiles = []
        mounts = []
        networkNamespace = nil
        annotations = [:]
    }
}

/// A resource limit (`--ulimit name=soft[:hard]`).
public struct Ulimit: Sendable, Equatable, Codable {
    public var name: String
    public var soft: UInt64
    public var hard: UInt64

    static let names: [String: Int32] = [
        "core": 4, "cpu": 0, "data": 2, "fsize": 1, "locks": 10, "memlock": 8, "msgqueue": 12,
        "nice": 13, "nofile": 7, "nproc": 6, "rss": 5, "rtprio": 14, "rttime": 15, "sigpending": 11,
        "stack": 3, "as": 9,
    ]

    /// Parses `name=soft[:hard]` (-1 means unlimited), as `docker run --ulimit`.
    public init(parsing text: String) throws {
        let fail = { (why: String) in AtollError.invalidArgument("invalid ulimit \"\(text)\": \(why)") }
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw fail("want name=soft[:hard]") }
        guard Self.names[parts[0]] != nil else {
            throw fail(
                "unknown limit \"\(parts[0])\" (want one of \(Self.names.keys.sorted().joined(separator: ", ")))")
        }
        let values = parts[1].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func value(_ text: String) throws -> UInt64 {
            if text == "-1" || text == "unlimited" { return UInt64.max }
            guard let number = UInt64(text) else { throw fail("\"\(text)\" is not a number") }
            return number
        }
        guard values.count <= 2 else { throw fail("want name=soft[:hard]") }
        name = parts[0]
        soft = try value(values[0])
        hard = values.count == 2 ? try value(values[1]) : soft
        guard soft <= hard else { throw fail("the soft limit is above the hard limit") }
    }

    public init(name: String, soft: UInt64, hard: UInt64) {
        self.name = name
        self.soft = soft
        self.hard = hard
    }

    var specType: String { "RLIMIT_\(name.uppercased())" }
    var resource: Int32 { Self.names[name] ?? -1 }
}

/// Writes the OCI runtime spec for a container: namespaces, Docker's default capabilities and
/// seccomp profile, masked and read-only kernel paths, a minimal /dev, cgroup limits and rlimits
/// that never exceed the host's hard limits (a spec above them fails to start).
public enum SpecBuilder {
    public static let defaultShmSize: Int64 = 64 << 20
    /// Where `--init`'s binary appears inside the container.
    public static let initPath = "/sbin/atoll-init"

    public static func build(
        _ input: SpecInput, hostLimit: (Int32) -> UInt64 = hostHardLimit,
        hostCapabilities: Set<String> = HostCapabilities.bounding
    ) throws -> RuntimeSpec {
        var capabilities = try SecurityDefaults.capabilities(
            adding: input.capAdd, dropping: input.capDrop, privileged: input.privileged)
        if input.privileged {
            // Privileged means every capability atolld itself may hand on, as in Docker.
            capabilities = capabilities.filter(hostCapabilities.contains)
        } else if let missing = capabilities.first(where: { !hostCapabilities.contains($0) }) {
            throw AtollError.invalidArgument(
                "capability \(missing) is not in atolld's bounding set on this host, so no container can have it")
        }
        var args = input.args
        var mounts = defaultMounts(shmSize: input.shmSizeBytes > 0 ? input.shmSizeBytes : defaultShmSize)
        if input.privileged {
            mounts = mounts.map { mount in
                guard mount.destination == "/sys" else { return mount }
                var writable = mount
                writable.options = mount.options?.filter { $0 != "ro" }
                return writable
            }
        }
        if let initBinary = input.initBinary {
            mounts.append(.init(destination: initPath, type: "bind", source: initBinary, options: ["rbind", "ro"]))
            args = [initPath, "--"] + args
        }
        let userDestinations = input.mounts.map(\.destination)
        func replaced(_ destination: String) -> Bool {
            userDestinations.contains { destination == $0 || destination.hasPrefix($0 + "/") }
        }
        mounts.removeAll { replaced($0.destination) }
        mounts += input.mounts
        // The engine's etc files go on top (also of a volume on /etc), unless mounted over themselves.
        for file in input.etcFiles where !userDestinations.contains(file.destination) {
            mounts.append(
                .init(destination: file.destination, type: "bind", source: file.source, options: ["rbind", "rprivate"]))
        }

        var namespaces = ["pid", "ipc", "uts", "mount", "cgroup"].map { RuntimeSpec.Namespace(type: $0) }
        if !input.hostNetwork { namespaces.append(.init(type: "network", path: input.networkNamespace)) }

        var env = input.env
        if !env.contains(where: { $0.hasPrefix("HOME=") }) { env.append("HOME=\(input.user.home)") }
        if input.terminal, !env.contains(where: { $0.hasPrefix("TERM=") }) { env.append("TERM=xterm") }

        let process = RuntimeSpec.Process(
            terminal: input.terminal, consoleSize: nil,
            user: .init(
                uid: input.user.uid, gid: input.user.gid,
                additionalGids: input.user.additionalGids.isEmpty ? nil : input.user.additionalGids),
            args: args, env: env, cwd: input.cwd,
            capabilities: .init(
                bounding: capabilities, effective: capabilities, permitted: capabilities, inheritable: nil,
                ambient: nil),
            rlimits: try rlimits(input.ulimits, hostLimit: hostLimit),
            noNewPrivileges: input.noNewPrivileges ? true : nil, oomScoreAdj: nil)

        var resources = RuntimeSpec.Resources()
        resources.devices = input.privileged ? [.init(allow: true, access: "rwm")] : deviceRules
        if input.memoryBytes > 0 { resources.memory = .init(limit: input.memoryBytes, swap: nil) }
        if input.nanoCPUs > 0 {
            let period: UInt64 = 100_000
            resources.cpu = .init(shares: nil, quota: input.nanoCPUs * Int64(period) / 1_000_000_000, period: period)
        }
        if input.pidsLimit > 0 { resources.pids = .init(limit: input.pidsLimit) }

        let linux = RuntimeSpec.Linux(
            namespaces: namespaces, resources: resources, cgroupsPath: input.cgroupsPath, devices: nil,
            seccomp: input.privileged || !input.seccomp
                ? nil : SecurityDefaults.seccompProfile(capabilities: capabilities),
            maskedPaths: input.privileged ? nil : SecurityDefaults.maskedPaths,
            readonlyPaths: input.privileged ? nil : SecurityDefaults.readonlyPaths, sysctl: nil)

        return RuntimeSpec(
            process: process, root: .init(path: input.rootfs, readonly: input.readOnly ? true : nil),
            hostname: input.hostname, mounts: mounts,
            annotations: input.annotations.isEmpty ? nil : input.annotations, linux: linux)
    }

    /// The host's hard limit for a resource (RLIMIT_*), as atolld sees it.
    public static func hostHardLimit(_ resource: Int32) -> UInt64 {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(UInt32(resource)), &limit) == 0 else { return UInt64.max }
        return limit.rlim_max == rlim_t.max ? UInt64.max : UInt64(limit.rlim_max)
    }

    /// Docker's default of 1048576 open files, capped at the host's hard limit; `--ulimit`
    /// entries replace defaults and may not exceed the host's hard limits.
    static func rlimits(_ requested: [Ulimit], hostLimit: (Int32) -> UInt64) throws -> [RuntimeSpec.Rlimit] {
        var limits: [String: Ulimit] = [:]
        let nofile = min(1_048_576, hostLimit(7))
        limits["nofile"] = Ulimit(name: "nofile", soft: nofile, hard: nofile)
        for limit in requested {
            let ceiling = hostLimit(limit.resource)
            if limit.hard > ceiling {
                throw AtollError.invalidArgument(
                    "ulimit \(limit.name): the hard limit \(limit.hard == .max ? "unlimited" : String(limit.hard)) exceeds this host's \(ceiling == .max ? "unlimited" : String(ceiling))"
                )
            }
            limits[limit.name] = limit
        }
        return limits.keys.sorted().compactMap { key in
            limits[key].map { RuntimeSpec.Rlimit(type: $0.specType, hard: $0.hard, soft: $0.soft) }
        }
    }

    static func defaultMounts(shmSize: Int64) -> [RuntimeSpec.Mount] {
        [
            .init(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
            .init(
                destination: "/dev", type: "tmpfs", source: "tmpfs",
                options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            .init(
                destination: "/dev/pts", type: "devpts", source: "devpts",
                options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
            .init(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
            .init(
                destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
                options: ["ro", "nosuid", "noexec", "nodev"]),
            .init(
                destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
            .init(
                destination: "/dev/shm", type: "tmpfs", source: "shm",
                options: ["nosuid", "noexec", "nodev", "mode=1777", "size=\(shmSize)"]),
        ]
    }

    /// Deny every device, then allow the ones a minimal /dev has (null, zero, full, random,
    /// urandom, tty, ptmx and pts), as Docker's default spec does.
    static let deviceRules: [RuntimeSpec.DeviceRule] = [
        .init(allow: false, access: "rwm"),
        .init(allow: true, type: "c", major: 1, minor: 3, access: "rwm"),
        .init(allow: true, type: "c", major: 1, minor: 5, access: "rwm"),
        .init(allow: true, type: "c", major: 1, minor: 7, access: "rwm"),
        .init(allow: true, type: "c", major: 1, minor: 8, access: "rwm"),
        .init(allow: true, type: "c", major: 1, minor: 9, access: "rwm"),
        .init(allow: true, type: "c", major: 5, minor: 0, access: "rwm"),
        .init(allow: true, type: "c", major: 5, minor: 1, access: "rwm"),
        .init(allow: true, type: "c", major: 5, minor: 2, access: "rwm"),
        .init(allow: true, type: "c", major: 136, minor: nil, access: "rwm"),
    ]
}

/// The capabilities atolld's own bounding set holds: nothing outside it can be given to a
/// container (some hosts, themselves containers, withhold a few, such as CAP_SYS_RESOURCE).
public enum HostCapabilities {
    public static let bounding: Set<String> = {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapBnd:") }),
            let mask = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return Set(SecurityDefaults.allCapabilities) }
        return Set(
            SecurityDefaults.allCapabilities.enumerated().filter { mask & (1 << UInt64($0.offset)) != 0 }.map(\.element)
        )
    }()
}
