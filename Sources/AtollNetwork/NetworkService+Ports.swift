import AtollCore
import GRDB

extension NetworkService {
    /// The host ports free ports are picked from (Linux's default ephemeral range, as Docker).
    static let ephemeralPorts = 32768...60999

    /// Records the container's published ports (`-p`, and `-P` for the image's exposed ones),
    /// each checked against the other containers' and against sockets the host already has bound.
    /// Returns whether it published any (the ruleset only changes then).
    func publishLocked(_ request: SandboxRequest, endpoints: [(EndpointRecord, NetworkRecord)]) throws -> Bool {
        var specs = request.networking.ports
        if request.networking.publishAll {
            for exposed in request.exposedPorts {
                let parts = exposed.split(separator: "/")
                guard let port = parts.first.flatMap({ Int($0) }) else { continue }
                let proto = parts.count > 1 ? String(parts[1]) : "tcp"
                if !specs.contains(where: { $0.containerPort == port && $0.proto == proto }) {
                    specs.append(PortSpec(proto: proto, containerPort: port))
                }
            }
        }
        guard !specs.isEmpty else { return false }
        guard let target = endpoints.first(where: { $0.1.driver == "bridge" && !$0.1.isInternal && !$0.0.ipv4.isEmpty })
        else {
            throw AtollError.invalidArgument(
                "ports can only be published from a bridge network that is not internal (container is on \(endpoints.map(\.1.name).joined(separator: ", ")))"
            )
        }
        let containerIP = target.0.ipv4
        try database.write { db in
            var taken = try PortRecord.fetchAll(db)
            for spec in specs {
                let hostPort = spec.hostPort != 0 ? spec.hostPort : try freePort(spec, taken: taken)
                let record = PortRecord(
                    containerID: request.containerID, proto: spec.proto, hostIP: spec.hostIP, hostPort: hostPort,
                    containerIP: containerIP, containerPort: spec.containerPort)
                if let clash = taken.first(where: { Self.conflicts($0, record) }) {
                    throw AtollError.alreadyExists(
                        "bind for \(Self.bindAddress(record)) failed: port is already allocated (container \(clash.containerID.prefix(12)))"
                    )
                }
                switch Self.probe(record) {
                case 0: break
                case 99:  // EADDRNOTAVAIL
                    throw AtollError.invalidArgument(
                        "bind for \(Self.bindAddress(record)) failed: the host has no address \(record.hostIP)")
                case let error:
                    throw AtollError.alreadyExists(
                        "bind for \(Self.bindAddress(record)) failed: port is already in use on the host (errno \(error))"
                    )
                }
                try record.insert(db)
                taken.append(record)
            }
        }
        return true
    }

    private func freePort(_ spec: PortSpec, taken: [PortRecord]) throws -> Int {
        let span = Self.ephemeralPorts
        let start = Int.random(in: span)
        for offset in 0..<span.count {
            let port = span.lowerBound + (start - span.lowerBound + offset) % span.count
            let candidate = PortRecord(
                containerID: "", proto: spec.proto, hostIP: spec.hostIP, hostPort: port, containerIP: "",
                containerPort: 0)
            if !taken.contains(where: { Self.conflicts($0, candidate) }) && Self.probe(candidate) == 0 { return port }
        }
        throw AtollError(.resourceExhausted, "no free host port for \(spec)")
    }

    /// Two bindings clash on the same protocol and port when their addresses are equal or either is
    /// every address.
    static func conflicts(_ a: PortRecord, _ b: PortRecord) -> Bool {
        a.proto == b.proto && a.hostPort == b.hostPort && (a.hostIP == b.hostIP || a.hostIP.isEmpty || b.hostIP.isEmpty)
    }

    /// Whether a program on the host already holds the port (the DNAT would hide it).
    static func probe(_ record: PortRecord) -> Int32 {
        let address = IPv4Address(record.hostIP.isEmpty ? "0.0.0.0" : record.hostIP) ?? IPv4Address(0)
        return SocketProbe.bindError(ipv4: address.bytes, port: UInt16(record.hostPort), udp: record.proto == "udp")
    }

    static func bindAddress(_ record: PortRecord) -> String {
        "\(record.hostIP.isEmpty ? "0.0.0.0" : record.hostIP):\(record.hostPort)"
    }
}
