import AtollCore
import Foundation

/// One sample of a container's resource use, read from its cgroup.
public struct ContainerStatsSample: Sendable {
    public var id: String
    public var name: String
    public var cpuUsageNanoseconds: UInt64
    public var systemCPUNanoseconds: UInt64
    public var onlineCPUs: UInt32
    public var memoryUsage: UInt64
    public var memoryLimit: UInt64
    public var pids: UInt64
    public var blockRead: UInt64
    public var blockWrite: UInt64
    public var readAt: Date
}

/// Reads cgroup counters on both layouts: v1 (one hierarchy per controller, also the hybrid
/// layout) and v2 (one unified hierarchy).
enum CgroupStats {
    static let root = "/sys/fs/cgroup"

    static var isUnified: Bool { FileSystem.exists("\(root)/cgroup.controllers") }

    static func read(_ cgroupPath: String) -> (
        cpu: UInt64, memory: UInt64, limit: UInt64, pids: UInt64, read: UInt64, write: UInt64
    ) {
        func number(_ path: String) -> UInt64 {
            guard let bytes = try? FileSystem.readFile(path, limit: 1 << 16) else { return 0 }
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return text == "max" ? UInt64.max : UInt64(text) ?? 0
        }
        func keyed(_ path: String) -> [(String, UInt64)] {
            guard let bytes = try? FileSystem.readFile(path, limit: 1 << 20) else { return [] }
            return String(decoding: bytes, as: UTF8.self).split(separator: "\n").flatMap { line -> [(String, UInt64)] in
                let words = line.split(separator: " ")
                return words.compactMap { word in
                    let pair = word.split(separator: "=")
                    if pair.count == 2, let value = UInt64(pair[1]) { return (String(pair[0]), value) }
                    return nil
                } + (words.count >= 2 ? [(String(words[words.count - 2]), UInt64(words[words.count - 1]) ?? 0)] : [])
            }
        }
        if isUnified {
            let base = "\(root)\(cgroupPath)"
            let cpu = (keyed("\(base)/cpu.stat").first { $0.0 == "usage_usec" }?.1 ?? 0) * 1000
            let io = keyed("\(base)/io.stat")
            return (
                cpu, number("\(base)/memory.current"), number("\(base)/memory.max"), number("\(base)/pids.current"),
                io.filter { $0.0 == "rbytes" }.reduce(0) { $0 + $1.1 },
                io.filter { $0.0 == "wbytes" }.reduce(0) { $0 + $1.1 }
            )
        }
        let io = keyed("\(root)/blkio\(cgroupPath)/blkio.throttle.io_service_bytes")
        return (
            number("\(root)/cpuacct\(cgroupPath)/cpuacct.usage"),
            number("\(root)/memory\(cgroupPath)/memory.usage_in_bytes"),
            number("\(root)/memory\(cgroupPath)/memory.limit_in_bytes"),
            number("\(root)/pids\(cgroupPath)/pids.current"),
            io.filter { $0.0 == "Read" }.reduce(0) { $0 + $1.1 }, io.filter { $0.0 == "Write" }.reduce(0) { $0 + $1.1 }
        )
    }

    /// The host's total CPU time in nanoseconds (from /proc/stat), for percentages.
    static func systemCPU() -> UInt64 {
        guard let bytes = try? FileSystem.readFile("/proc/stat", limit: 1 << 20),
            let line = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first
        else { return 0 }
        let ticks = line.split(separator: " ").dropFirst().prefix(8).compactMap { UInt64($0) }.reduce(0, +)
        return ticks * 10_000_000  // USER_HZ is 100 on Linux
    }
}

extension ContainerService {
    /// A sample for each running container named (all running ones when none is named).
    public func stats(_ references: [String]) throws -> [ContainerStatsSample] {
        let records =
            references.isEmpty
            ? try list(all: false, filters: []).map(\.record) : try references.map { try lookup($0) }
        let system = CgroupStats.systemCPU()
        let hostMemory = UInt64(ProcessInfo.processInfo.physicalMemory)
        return records.map { record in
            let running = record.state.status.isActive
            let counters =
                running
                ? CgroupStats.read("/atoll/\(record.id)") : (cpu: 0, memory: 0, limit: 0, pids: 0, read: 0, write: 0)
            return ContainerStatsSample(
                id: record.id, name: record.name, cpuUsageNanoseconds: counters.cpu, systemCPUNanoseconds: system,
                onlineCPUs: UInt32(ProcessInfo.processInfo.activeProcessorCount), memoryUsage: counters.memory,
                memoryLimit: counters.limit == 0 || counters.limit > hostMemory ? hostMemory : counters.limit,
                pids: counters.pids, blockRead: counters.read, blockWrite: counters.write, readAt: Date())
        }
    }
}
