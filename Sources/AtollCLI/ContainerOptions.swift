import ArgumentParser
import AtollAPI
import AtollCore
import AtollRuntime
import Foundation
import GRPCCore

/// The flags `create` and `run` share, as Docker spells them.
struct ContainerOptions: ParsableArguments {
    @Option(name: .long, help: "Assign a name to the container.") var name: String?
    @Option(name: .shortAndLong, help: "Set environment variables (KEY=VALUE, or KEY to pass the CLI's value).")
    var env: [String] = []
    @Option(name: .customLong("env-file"), help: "Read environment variables from a file.") var envFile: [String] = []
    @Option(name: .shortAndLong, help: "Username or UID (format: name|uid[:group|gid]).") var user: String?
    @Option(name: .shortAndLong, help: "Working directory inside the container.") var workdir: String?
    @Option(name: .long, help: "Overwrite the image's ENTRYPOINT.") var entrypoint: String?
    @Option(name: [.long, .customShort("h")], help: "Container host name.") var hostname: String?
    @Flag(name: .shortAndLong, help: "Allocate a pseudo-TTY.") var tty = false
    @Flag(name: .shortAndLong, help: "Keep STDIN open even if not attached.") var interactive = false
    @Flag(name: .customLong("read-only"), help: "Mount the container's root filesystem as read only.")
    var readOnly = false
    @Option(name: .customLong("cap-add"), help: "Add Linux capabilities.") var capAdd: [String] = []
    @Option(name: .customLong("cap-drop"), help: "Drop Linux capabilities.") var capDrop: [String] = []
    @Option(name: .customLong("security-opt"), help: "Security options (no-new-privileges, seccomp=unconfined).")
    var securityOpt: [String] = []
    @Flag(name: .long, help: "Give extended privileges to this container.") var privileged = false
    @Flag(name: .long, help: "Run an init inside the container that forwards signals and reaps processes.")
    var `init` = false
    @Option(name: .shortAndLong, help: "Memory limit (e.g. 512m, 1g).") var memory: String?
    @Option(name: .long, help: "Number of CPUs (e.g. 1.5).") var cpus: String?
    @Option(name: .customLong("pids-limit"), help: "Tune the container's pids limit (-1 for unlimited).")
    var pidsLimit: Int64?
    @Option(name: .customLong("shm-size"), help: "Size of /dev/shm (e.g. 64m).") var shmSize: String?
    @Option(name: .long, help: "Ulimit options (name=soft[:hard]).") var ulimit: [String] = []
    @Option(name: .long, help: "Restart policy: no, on-failure[:max-retries], always, unless-stopped.")
    var restart: String?
    @Flag(name: .long, help: "Automatically remove the container when it exits.") var rm = false
    @Option(name: .long, help: "Runtime to use for this container (crun or runc).") var runtime: String?
    @Option(name: [.customShort("l"), .long], help: "Set metadata on a container (KEY=VALUE).") var label: [String] = []
    @Option(name: .customLong("stop-signal"), help: "Signal to stop the container.") var stopSignal: String?
    @Option(name: .customLong("stop-timeout"), help: "Timeout (in seconds) to stop a container.") var stopTimeout:
        Int32?
    @Option(
        name: [.customLong("network"), .customLong("net")],
        help: "Connect the container to a network (bridge, host, none, or a network's name).")
    var network: String?
    @Option(
        name: [.customShort("p"), .long],
        help: "Publish a container's port to the host ([ip:][hostPort:]containerPort[/udp]).")
    var publish: [String] = []
    @Flag(
        name: [.customShort("P"), .customLong("publish-all")], help: "Publish every exposed port to a free host port.")
    var publishAll = false
    @Option(name: .long, help: "IPv4 address on the network (e.g. 172.30.100.104).") var ip: String?
    @Option(name: .long, help: "IPv6 address on the network.") var ip6: String?
    @Option(name: [.customLong("network-alias"), .customLong("net-alias")], help: "Add a network-scoped alias.")
    var networkAlias: [String] = []
    @Option(name: .long, help: "Set custom DNS servers.") var dns: [String] = []
    @Option(name: .customLong("dns-search"), help: "Set custom DNS search domains.") var dnsSearch: [String] = []
    @Option(name: [.customLong("dns-option"), .customLong("dns-opt")], help: "Set DNS options.") var dnsOption:
        [String] = []
    @Option(name: .customLong("add-host"), help: "Add a custom host-to-IP mapping (host:ip).") var addHost: [String] =
        []
    @Option(
        name: [.customShort("v"), .long],
        help: "Bind mount a volume: NAME:TARGET, /HOST/PATH:TARGET or TARGET (anonymous), with :ro, :rw, :nocopy…")
    var volume: [String] = []
    @Option(name: .long, help: "Attach a mount: type=volume|bind|tmpfs,source=…,target=…[,readonly,…].")
    var mount: [String] = []
    @Option(name: .long, help: "Mount a tmpfs: TARGET[:OPTIONS].") var tmpfs: [String] = []
    @Option(name: .customLong("volumes-from"), help: "Mount the volumes of a container (CONTAINER[:ro|rw]).")
    var volumesFrom: [String] = []
    @Option(name: .customLong("health-cmd"), help: "Command to run to check health.") var healthCmd: String?
    @Option(name: .customLong("health-interval"), help: "Time between running the check (e.g. 30s).")
    var healthInterval: String?
    @Option(name: .customLong("health-timeout"), help: "Maximum time to allow one check to run.")
    var healthTimeout: String?
    @Option(name: .customLong("health-start-period"), help: "Start period before failures count.")
    var healthStartPeriod: String?
    @Option(name: .customLong("health-retries"), help: "Consecutive failures needed to report unhealthy.")
    var healthRetries: Int32?
    @Flag(name: .customLong("no-healthcheck"), help: "Disable any container-specified HEALTHCHECK.")
    var noHealthcheck = false

    @Argument(help: "The image to run.") var image: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var command: [String] = []

    /// The API's container config for these flags; bad values fail here, before any request.
    func config() throws -> Atoll_Engine_V1_ContainerConfig {
        var config = Atoll_Engine_V1_ContainerConfig()
        config.image = image
        config.name = name ?? ""
        config.cmd = command
        if let entrypoint {
            config.entrypointSet = true
            config.entrypoint = entrypoint.isEmpty ? [] : [entrypoint]
        }
        config.env = try Self.environment(files: envFile, flags: env)
        config.user = user ?? ""
        config.workdir = workdir ?? ""
        config.hostname = hostname ?? ""
        config.tty = tty
        config.openStdin = interactive
        config.readOnly = readOnly
        config.capAdd = capAdd
        config.capDrop = capDrop
        config.securityOpt = securityOpt
        config.privileged = privileged
        config.init_p = `init`
        if let memory { config.memoryBytes = try Self.bytes(memory, flag: "-m, --memory") }
        if let cpus {
            guard let value = Double(cpus), value > 0 else {
                throw ValidationError("invalid argument \"\(cpus)\" for \"--cpus\" flag: want a positive number")
            }
            config.nanoCpus = Int64((value * 1e9).rounded())
        }
        if let pidsLimit { config.pidsLimit = pidsLimit < 0 ? 0 : pidsLimit }
        if let shmSize { config.shmSizeBytes = try Self.bytes(shmSize, flag: "--shm-size") }
        config.ulimits = ulimit
        config.restartPolicy = restart ?? ""
        config.autoRemove = rm
        config.runtime = runtime ?? ""
        config.labels = Dictionary(
            label.map { entry in
                let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }, uniquingKeysWith: { $1 })
        config.stopSignal = stopSignal ?? ""
        config.stopTimeout = stopTimeout ?? -1
        config.network = network ?? ""
        config.publish = publish
        config.publishAll = publishAll
        config.ipv4Address = ip ?? ""
        config.ipv6Address = ip6 ?? ""
        config.networkAliases = networkAlias
        config.dns = dns
        config.dnsSearch = dnsSearch
        config.dnsOptions = dnsOption
        config.extraHosts = addHost
        config.volumes = volume.map(Self.absoluteBindSource)
        config.mounts = mount
        config.tmpfs = tmpfs
        config.volumesFrom = volumesFrom
        if healthCmd != nil || healthInterval != nil || healthTimeout != nil || healthStartPeriod != nil
            || healthRetries != nil || noHealthcheck
        {
            var health = Atoll_Engine_V1_HealthConfig()
            if let healthCmd { health.test = ["CMD-SHELL", healthCmd] }
            if let healthInterval { health.intervalNs = try Self.duration(healthInterval, flag: "--health-interval") }
            if let healthTimeout { health.timeoutNs = try Self.duration(healthTimeout, flag: "--health-timeout") }
            if let healthStartPeriod {
                health.startPeriodNs = try Self.duration(healthStartPeriod, flag: "--health-start-period")
            }
            health.retries = healthRetries ?? 0
            health.disabled = noHealthcheck
            config.health = health
        }
        return config
    }

    /// `-v ./data:/data`: a source that is a relative path ("." or "..", or starting with
    /// them) is made absolute from the CLI's working directory, as Docker's CLI does; anything
    /// else without a leading "/" is a volume name.
    static func absoluteBindSource(_ spec: String) -> String {
        guard let colon = spec.firstIndex(of: ":") else { return spec }
        let source = String(spec[..<colon])
        guard source == "." || source == ".." || source.hasPrefix("./") || source.hasPrefix("../") else { return spec }
        let absolute = URL(
            fileURLWithPath: source, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        )
        .standardizedFileURL.path
        return absolute + spec[colon...]
    }

    /// KEY=VALUE entries from env files then flags; a bare KEY takes the CLI's own value.
    static func environment(files: [String], flags: [String]) throws -> [String] {
        var entries: [String] = []
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("cannot read env file \(file)")
            }
            for line in text.split(separator: "\n") {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
                entries.append(trimmed)
            }
        }
        entries += flags
        return entries.compactMap { entry in
            if entry.contains("=") { return entry }
            return ProcessInfo.processInfo.environment[entry].map { "\(entry)=\($0)" }
        }
    }

    static func bytes(_ text: String, flag: String) throws -> Int64 {
        guard let bytes = ByteCount.parse(text) else {
            throw ValidationError("invalid argument \"\(text)\" for \"\(flag)\" flag: want a size such as 512m or 1g")
        }
        return bytes
    }

    static func duration(_ text: String, flag: String) throws -> Int64 {
        guard let nanoseconds = GoDuration.nanoseconds(text), nanoseconds >= 0 else {
            throw ValidationError("invalid argument \"\(text)\" for \"\(flag)\" flag: want a duration such as 30s")
        }
        return nanoseconds
    }
}

/// Exit statuses `docker run` uses for its own failures.
enum RunExit {
    /// The daemon (or the CLI) failed: 125; a start failure carries 126 or 127 in metadata.
    static func status(for error: any Error) -> Int32 {
        if let error = error as? RPCError,
            let text = error.metadata[stringValues: "atoll-exit-status"].first(where: { _ in true }),
            let status = Int32(text)
        {
            return status
        }
        return 125
    }
}
