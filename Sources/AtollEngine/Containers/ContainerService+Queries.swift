import AtollCore
import AtollImages
import AtollNetwork
import AtollRuntime
import Foundation
import GRDB

/// One row of `atoll ps`.
public struct ContainerSummary: Sendable {
    public var record: ContainerRecord
    public var imageName: String
    public var command: String
    public var status: String
    public var health: String
    /// "0.0.0.0:8080->80/tcp", as docker ps shows them.
    public var ports: [String] = []
    public var networks: [String] = []
}

extension ContainerService {
    /// `ps`: running containers (all with `all`), newest first. Filters: id=, name=, label=KEY[=V],
    /// status=, exited=CODE, ancestor=IMAGE, health=.
    public func list(all: Bool, filters: [String]) throws -> [ContainerSummary] {
        var parsed: [(String, String)] = []
        for filter in filters {
            let parts = filter.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw AtollError.invalidArgument("invalid filter \"\(filter)\": want key=value")
            }
            guard ["id", "name", "label", "status", "exited", "ancestor", "health"].contains(parts[0]) else {
                throw AtollError.invalidArgument(
                    "invalid filter \"\(parts[0])\": supported are id, name, label, status, exited, ancestor and health"
                )
            }
            parsed.append((parts[0], parts[1]))
        }
        let ancestors = try parsed.filter { $0.0 == "ancestor" }.map { try images.resolve($0.1).id }
        let records = try database.read { db in try ContainerRecord.order(Column("created").desc).fetchAll(db) }
        let now = Date()
        let ports = Dictionary(grouping: (try? networks.allPorts()) ?? [], by: \.containerID)
        let attached = (try? networks.networkNames()) ?? [:]
        return records.compactMap { record in
            let state = record.state
            let showAll = all || parsed.contains { $0.0 == "status" || $0.0 == "exited" }
            guard showAll || state.status.isActive || state.status == .restarting else { return nil }
            for (key, value) in parsed {
                switch key {
                case "id": if !record.id.hasPrefix(value) { return nil }
                case "name": if !record.name.contains(value) { return nil }
                case "label":
                    let pair = value.split(separator: "=", maxSplits: 1).map(String.init)
                    guard let actual = record.settings.labels[pair[0]], pair.count == 1 || actual == pair[1] else {
                        return nil
                    }
                case "status": if state.status.rawValue != value { return nil }
                case "exited": if state.status != .exited || String(state.exitCode) != value { return nil }
                case "health": if (state.health?.status.rawValue ?? "none") != value { return nil }
                default: break
                }
            }
            if !ancestors.isEmpty && !ancestors.contains(record.imageID) { return nil }
            return ContainerSummary(
                record: record, imageName: record.settings.image, command: commandLine(record),
                status: Self.statusText(state, now: now), health: state.health?.status.rawValue ?? "",
                ports: (ports[record.id] ?? []).map(Self.portText),
                networks: attached[record.id] ?? (record.settings.networking?.attachments.map(\.network) ?? []))
        }
    }

    /// A published port as docker ps shows it.
    static func portText(_ port: PortRecord) -> String {
        "\(port.hostIP.isEmpty ? "0.0.0.0" : port.hostIP):\(port.hostPort)->\(port.containerPort)/\(port.proto)"
    }

    /// `inspect`'s NetworkSettings: the ports, and per network the addresses, MAC and aliases.
    func inspectNetwork(_ record: ContainerRecord) -> [String: Any] {
        let endpoints = (try? networks.endpoints(of: record.id)) ?? []
        let ports = (try? networks.ports(of: record.id)) ?? []
        var portMap: [String: Any] = [:]
        for port in ports {
            var bindings = portMap["\(port.containerPort)/\(port.proto)"] as? [[String: String]] ?? []
            bindings.append([
                "HostIp": port.hostIP.isEmpty ? "0.0.0.0" : port.hostIP, "HostPort": String(port.hostPort),
            ])
            portMap["\(port.containerPort)/\(port.proto)"] = bindings
        }
        var perNetwork: [String: Any] = [:]
        for (endpoint, network) in endpoints {
            let v4 = network.subnets.first { $0.network?.isIPv4 == true }
            let v6 = network.subnets.first { $0.network?.isIPv4 == false }
            perNetwork[network.name] =
                [
                    "NetworkID": network.id, "IPAddress": endpoint.ipv4, "IPPrefixLen": v4?.network?.prefixLength ?? 0,
                    "Gateway": v4?.gateway ?? "", "GlobalIPv6Address": endpoint.ipv6,
                    "GlobalIPv6PrefixLen": v6?.network?.prefixLength ?? 0, "IPv6Gateway": v6?.gateway ?? "",
                    "MacAddress": endpoint.mac, "Aliases": endpoint.aliases,
                ] as [String: Any]
        }
        let primary = endpoints.first
        let primaryV4 = primary?.1.subnets.first { $0.network?.isIPv4 == true }
        return [
            "Ports": portMap, "Networks": perNetwork, "IPAddress": primary?.0.ipv4 ?? "",
            "IPPrefixLen": primaryV4?.network?.prefixLength ?? 0, "Gateway": primaryV4?.gateway ?? "",
            "MacAddress": primary?.0.mac ?? "",
            "SandboxKey": endpoints.isEmpty ? "" : "\(networks.namespaceDirectory)/\(record.id)",
        ]
    }

    func commandLine(_ record: ContainerRecord) -> String {
        let image = try? imageConfig(record)
        let entrypoint = record.settings.entrypoint ?? image?.entrypoint ?? []
        let cmd =
            !record.settings.cmd.isEmpty
            ? record.settings.cmd : (record.settings.entrypoint != nil ? [] : image?.cmd ?? [])
        return (entrypoint + cmd).joined(separator: " ")
    }

    /// "Up 3 minutes (healthy)", "Exited (0) 2 seconds ago", as `docker ps` words it.
    static func statusText(_ state: ContainerState, now: Date) -> String {
        let health =
            state.health.map { $0.status == .starting ? " (health: starting)" : " (\($0.status.rawValue))" } ?? ""
        switch state.status {
        case .created: return "Created"
        case .running: return "Up \(humanDuration(now.timeIntervalSince(state.startedAt ?? now)))\(health)"
        case .paused: return "Up \(humanDuration(now.timeIntervalSince(state.startedAt ?? now))) (Paused)"
        case .restarting:
            return "Restarting (\(state.exitCode)) \(humanDuration(now.timeIntervalSince(state.finishedAt ?? now))) ago"
        case .exited:
            guard let finished = state.finishedAt else { return "Exited (\(state.exitCode))" }
            return "Exited (\(state.exitCode)) \(humanDuration(now.timeIntervalSince(finished))) ago"
        case .dead: return "Dead"
        case .removing: return "Removal In Progress"
        }
    }

    static func humanDuration(_ seconds: TimeInterval) -> String {
        let s = Int(max(0, seconds))
        if s < 1 { return "Less than a second" }
        if s == 1 { return "1 second" }
        if s < 60 { return "\(s) seconds" }
        if s < 120 { return "About a minute" }
        if s < 3600 { return "\(s / 60) minutes" }
        if s < 7200 { return "About an hour" }
        if s < 48 * 3600 { return "\(s / 3600) hours" }
        return "\(s / 86400) days"
    }

    /// `inspect`: Docker's document shape for the fields Atoll has.
    public func inspect(_ reference: String) throws -> [String: Any] {
        let record = try lookup(reference)
        let settings = record.settings
        let state = record.state
        let image = try? imageConfig(record)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        func time(_ date: Date?) -> String { date.map { formatter.string(from: $0) } ?? "0001-01-01T00:00:00Z" }
        let entrypoint = settings.entrypoint ?? image?.entrypoint ?? []
        let cmd = !settings.cmd.isEmpty ? settings.cmd : (settings.entrypoint != nil ? [] : image?.cmd ?? [])
        let args = entrypoint + cmd
        var stateDocument: [String: Any] = [
            "Status": state.status.rawValue, "Running": state.status.isActive, "Paused": state.status == .paused,
            "Restarting": state.status == .restarting, "OOMKilled": false, "Dead": state.status == .dead,
            "Pid": Int(state.pid), "ExitCode": Int(state.exitCode), "Error": state.error,
            "StartedAt": time(state.startedAt), "FinishedAt": time(state.finishedAt),
        ]
        if let health = state.health {
            stateDocument["Health"] = [
                "Status": health.status.rawValue, "FailingStreak": health.failingStreak,
                "Log": health.log.map {
                    ["Start": time($0.start), "End": time($0.end), "ExitCode": Int($0.exitCode), "Output": $0.output]
                },
            ]
        }
        let created = Date(timeIntervalSince1970: TimeInterval(record.created) / 1e9)
        return [
            "Id": record.id, "Created": time(created), "Path": args.first ?? "", "Args": Array(args.dropFirst()),
            "State": stateDocument, "Image": record.imageID, "Name": "/\(record.name)",
            "RestartCount": state.restartCount, "Driver": snapshotter.driverName, "LogPath": paths.log(record.id),
            "Mounts": inspectMounts(record),
            "NetworkSettings": inspectNetwork(record),
            "HostConfig": [
                "VolumesFrom": settings.volumesFrom,
                "Runtime": state.runtime.isEmpty ? settings.runtime : state.runtime,
                "RestartPolicy": [
                    "Name": settings.restartPolicy.mode.rawValue,
                    "MaximumRetryCount": settings.restartPolicy.maximumRetries,
                ],
                "AutoRemove": settings.autoRemove, "Privileged": settings.privileged,
                "ReadonlyRootfs": settings.readOnly,
                "CapAdd": settings.capAdd, "CapDrop": settings.capDrop, "SecurityOpt": settings.securityOpt,
                "Init": settings.initProcess, "Memory": settings.memoryBytes, "NanoCpus": settings.nanoCPUs,
                "PidsLimit": settings.pidsLimit,
                "ShmSize": settings.shmSizeBytes > 0 ? settings.shmSizeBytes : SpecBuilder.defaultShmSize,
                "Ulimits": settings.ulimits, "NetworkMode": settings.network,
                "PortBindings": Dictionary(
                    grouping: settings.networking?.ports ?? [], by: { "\($0.containerPort)/\($0.proto)" }
                ).mapValues {
                    $0.map { ["HostIp": $0.hostIP, "HostPort": $0.hostPort == 0 ? "" : String($0.hostPort)] }
                },
                "PublishAllPorts": settings.networking?.publishAll ?? false,
                "Dns": settings.networking?.dns ?? [], "DnsSearch": settings.networking?.dnsSearch ?? [],
                "DnsOptions": settings.networking?.dnsOptions ?? [],
                "ExtraHosts": settings.networking?.extraHosts ?? [],
            ] as [String: Any],
            "Config": [
                "Hostname": settings.hostname.isEmpty ? String(record.id.prefix(12)) : settings.hostname,
                "User": settings.user.isEmpty ? image?.user ?? "" : settings.user,
                "Env": Self.mergeEnvironment(image: image?.env ?? [], overrides: settings.env), "Cmd": cmd,
                "Entrypoint": entrypoint, "Image": settings.image,
                "WorkingDir": settings.workdir.isEmpty ? image?.workingDir ?? "" : settings.workdir,
                "Labels": (image?.labels ?? [:]).merging(settings.labels) { $1 }, "Tty": settings.tty,
                "OpenStdin": settings.openStdin,
                "Volumes": (image?.volumes ?? [:]).mapValues { _ in [String: Any]() },
                "StopSignal": settings.stopSignal.isEmpty ? image?.stopSignal ?? "SIGTERM" : settings.stopSignal,
            ] as [String: Any],
        ]
    }

    /// `logs`: the records that match, and where a follower continues reading.
    public func logs(_ reference: String, tail: Int?, since: Int64?, until: Int64?) throws -> (
        records: [LogRecord], offset: UInt64, id: String
    ) {
        let record = try lookup(reference)
        let reader = ContainerLogReader(path: paths.log(record.id))
        let result = try reader.read(tail: tail, since: since, until: until)
        return (result.records, result.endOffset, record.id)
    }

    /// New complete log lines after `offset`; `running` says whether more may come.
    public func logs(id: String, from offset: UInt64) throws -> (records: [LogRecord], offset: UInt64, running: Bool) {
        let reader = ContainerLogReader(path: paths.log(id))
        let result = try reader.read(from: offset)
        let status = try fetch(id)?.state.status
        let running = status?.isActive == true || status == .restarting
        return (result.records, result.endOffset, running)
    }

    /// `container prune`: removes every stopped container (label filters apply); answers the
    /// removed IDs and the bytes their writable layers held.
    public func prune(filters: [String]) async throws -> (removed: [String], reclaimed: Int64) {
        let candidates = try list(all: true, filters: filters).filter {
            $0.record.state.status == .exited || $0.record.state.status == .created || $0.record.state.status == .dead
        }
        var removed: [String] = []
        var reclaimed: Int64 = 0
        for candidate in candidates {
            let size = (try? snapshotter.usage(candidate.record.snapshotKey).size) ?? 0
            do {
                try await BlockingWork.run { try self.removeStopped(candidate.record.id, force: false) }
                removed.append(candidate.record.id)
                reclaimed += size
            } catch {
                logger.warning("prune: cannot remove container \(candidate.record.id): \(error)")
            }
        }
        return (removed, reclaimed)
    }

    /// Bytes in a container's writable layer (for `ps -s` and `system df`).
    public func writableLayerSize(_ record: ContainerRecord) -> Int64 {
        (try? snapshotter.usage(record.snapshotKey).size) ?? 0
    }

    /// `top`: `ps` run on the host, keeping the container's processes (as Docker does).
    public func top(_ reference: String, psArguments: [String]) throws -> (titles: [String], rows: [[String]]) {
        let record = try lookup(reference)
        guard record.state.status.isActive else {
            throw AtollError.failedPrecondition("container \"\(record.name)\" is not running")
        }
        let runtime = try self.runtime(named: record.state.runtime)
        let pids = Set(try runtime.processes(record.id))
        guard let ps = Subprocess.which("ps") else { throw AtollError(.unavailable, "ps (procps) is not installed") }
        let arguments = psArguments.isEmpty ? ["-ef"] : psArguments
        let result = try Subprocess.run(ps, arguments)
        guard result.succeeded else {
            throw AtollError.invalidArgument("ps \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        }
        var lines = result.stdout.split(separator: "\n").map(String.init)
        guard !lines.isEmpty else { return ([], []) }
        let header = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let pidColumn = header.firstIndex(of: "PID") else {
            throw AtollError.invalidArgument("ps \(arguments.joined(separator: " ")) prints no PID column")
        }
        var rows: [[String]] = []
        for line in lines {
            var fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count >= header.count, let pid = Int32(fields[pidColumn]), pids.contains(pid) else { continue }
            // The last column (the command) may contain spaces.
            let last = fields[(header.count - 1)...].joined(separator: " ")
            fields = Array(fields[..<(header.count - 1)]) + [last]
            rows.append(fields)
        }
        return (header, rows)
    }
}
