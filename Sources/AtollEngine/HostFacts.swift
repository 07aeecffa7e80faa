import AtollCore
import Foundation
import Glibc

/// Facts about the host that `atoll info` reports and the engine designs around.
public struct HostFacts: Sendable {
    public var kernelVersion: String
    public var operatingSystem: String
    public var architecture: String
    public var cpus: Int
    public var memoryBytes: Int64
    public var hostname: String
    /// "1", "2" or "hybrid" (v1 controllers with a cgroup2 hierarchy mounted beside them).
    public var cgroupVersion: String

    public static func read() -> HostFacts {
        var names = utsname()
        uname(&names)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return HostFacts(
            kernelVersion: field(names.release),
            operatingSystem: osRelease() ?? "Linux",
            architecture: goArchitecture(field(names.machine)),
            cpus: ProcessInfo.processInfo.activeProcessorCount,
            memoryBytes: Int64(ProcessInfo.processInfo.physicalMemory),
            hostname: field(names.nodename),
            cgroupVersion: cgroupVersion()
        )
    }

    /// The architecture as OCI names it (amd64, arm64, ...).
    public static func goArchitecture(_ machine: String) -> String {
        switch machine {
        case "x86_64": "amd64"
        case "aarch64": "arm64"
        case "i386", "i686": "386"
        case "armv7l", "armv6l": "arm"
        default: machine
        }
    }

    private static func osRelease() -> String? {
        guard let text = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            return String(line.dropFirst(12)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return nil
    }

    private static let cgroup2Magic: Int64 = 0x6367_7270

    /// Reads the cgroup layout from statfs of /sys/fs/cgroup (and its `unified` mount).
    static func cgroupVersion() -> String {
        func magic(_ path: String) -> Int64? { try? MountSyscall.fileSystemMagic(path) }
        if magic("/sys/fs/cgroup") == cgroup2Magic { return "2" }
        if magic("/sys/fs/cgroup/unified") == cgroup2Magic { return "hybrid" }
        return "1"
    }
}
