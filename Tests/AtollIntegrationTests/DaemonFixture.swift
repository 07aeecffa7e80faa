import AtollCore
import Foundation
import Glibc

/// A real atolld on a scratch root and socket, driven through the real `atoll` binary.
/// Removed (daemon stopped, mounts undone, directories deleted) by `shutdown()`.
final class DaemonFixture: @unchecked Sendable {
    let directory: String
    let root: String
    let socket: String
    let runDirectory: String
    private(set) var process: Process?
    private let storageDriver: String?
    private let extraArguments: [String]

    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let binDirectory: String = {
        if let explicit = ProcessInfo.processInfo.environment["ATOLL_BIN_DIR"] { return explicit }
        return "\(packageRoot)/.build/debug"
    }()

    /// The default bridge's device: each daemon its own, so that daemons of tests running at the
    /// same time never share a bridge, an address pool or an nftables table.
    let bridge: String
    /// The network namespace the daemon runs in (nsenter --net), when the test asked for one.
    let namespace: String?

    /// With `isolatedNetwork`, atolld runs in a network namespace of its own (a lab host), so
    /// links, addresses and rules can be compared before and after without other tests' noise.
    init(
        storageDriver: String? = nil, extraArguments: [String] = [], start: Bool = true, isolatedNetwork: Bool = false
    ) throws {
        self.extraArguments = extraArguments
        let suffix = UUID().uuidString.prefix(8).lowercased()
        directory = "/tmp/atoll-it-\(suffix)"
        bridge = "atl-it-\(suffix.prefix(6))"
        namespace = isolatedNetwork ? "atoll-it-\(suffix)" : nil
        if let namespace {
            let made = Self.shell("ip netns add \(namespace) && ip -n \(namespace) link set lo up")
            guard made.status == 0 else { throw FixtureError("cannot create namespace \(namespace): \(made.stderr)") }
        }
        root = "\(directory)/root"
        runDirectory = "\(directory)/run"
        socket = "\(directory)/run/atolld.sock"
        self.storageDriver = storageDriver
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if start { try self.start() }
    }

    /// Starts atolld and waits until it answers on its socket.
    func start() throws {
        let process = Process()
        var arguments = [
            "--root", root, "--socket", socket, "--exec-root", runDirectory, "--log-level", "debug", "--bridge", bridge,
        ]
        if let storageDriver { arguments += ["--storage-driver", storageDriver] }
        if let namespace {
            // Only the network namespace: /sys and its cgroup mounts stay as they are.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            process.arguments =
                ["--net=/run/netns/\(namespace)", "\(Self.binDirectory)/atolld"] + arguments + extraArguments
        } else {
            process.executableURL = URL(fileURLWithPath: "\(Self.binDirectory)/atolld")
            process.arguments = arguments + extraArguments
        }
        let logPath = "\(directory)/atolld.log"
        if !FileManager.default.fileExists(atPath: logPath) {
            FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        guard let log = FileHandle(forWritingAtPath: logPath) else { throw FixtureError("cannot open \(logPath)") }
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        for _ in 0..<200 {
            if atoll(["version"]).status == 0 { return }
            if !process.isRunning { break }
            usleep(50_000)
        }
        throw FixtureError("atolld did not start: \(daemonLog())")
    }

    /// Stops atolld with SIGTERM and waits; returns its exit status.
    @discardableResult
    func stop() -> Int32 {
        guard let process, process.isRunning else { return process?.terminationStatus ?? 0 }
        process.terminate()
        process.waitUntilExit()
        self.process = nil
        return process.terminationStatus
    }

    func daemonLog() -> String { (try? String(contentsOfFile: "\(directory)/atolld.log", encoding: .utf8)) ?? "" }

    /// Kills atolld without letting it clean up (as a crash or `kill -9` would).
    func crash() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    /// The mounts /proc/self/mountinfo lists, innermost last: mount point and super-block options.
    /// (A read can skip lines while other tests mount and unmount: read again to be sure.)
    static func mounts() -> [(point: String, options: [Substring])] {
        let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 4, let options = fields.last else { return nil }
            return (String(fields[4]), options.split(separator: ","))
        }
    }

    /// Whether something is mounted at `path`.
    static func isMountPoint(_ path: String) -> Bool { mounts().contains { $0.point == path } }

    /// Mount points below the scratch directory, but for the read-only runtime binaries atolld
    /// keeps mounted while it runs (`<run>/runtimes/`).
    func leftoverMounts() -> [String] {
        Self.mounts().map(\.point).filter { $0.hasPrefix(directory) && !$0.hasPrefix("\(runDirectory)/runtimes/") }
    }

    /// Pids of the conmon monitors serving containers of this daemon.
    func monitorPids() -> [Int32] {
        let result = Self.shell("pgrep -f '[c]onmon .*\(directory)' || true")
        return result.stdout.split(separator: "\n").compactMap { Int32($0) }
    }

    func shutdown() {
        // Containers outlive the daemon by design: remove them first, then kill any monitor left.
        if process?.isRunning == true {
            let ids = atoll(["ps", "-aq", "--no-trunc"]).stdout.split(separator: "\n").map(String.init)
            if !ids.isEmpty { _ = atoll(["rm", "-f"] + ids) }
            _ = atoll(["network", "prune", "-f"])
        }
        for pid in monitorPids() { kill(pid, SIGKILL) }
        stop()
        // Anything still mounted below the scratch directory (a failed test) goes first. A read of
        // mountinfo can skip lines while other tests mount: read until nothing is left (or 5 times).
        for _ in 0..<5 {
            let below = Self.mounts().map(\.point).filter { $0.hasPrefix(directory) }.reversed()
            if below.isEmpty { break }
            for point in below { umount2(point, Int32(MNT_DETACH)) }
        }
        try? FileManager.default.removeItem(atPath: directory)
        // The daemon leaves its bridge and rules for containers that outlive it; the test does not.
        let table = "atoll_\(bridge.replacingOccurrences(of: "-", with: "_"))"
        _ = inNetwork("ip link delete \(bridge) 2>/dev/null; nft delete table inet \(table) 2>/dev/null; true")
        if let namespace { _ = Self.shell("ip netns delete \(namespace)") }
    }

    /// Runs a shell command in the daemon's network namespace (the host's when it has none).
    func inNetwork(_ command: String) -> Result {
        guard let namespace else { return Self.shell(command) }
        return Self.run("/usr/bin/nsenter", ["--net=/run/netns/\(namespace)", "/bin/bash", "-c", command])
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The CLI's configuration directory (`atoll login` credentials), one per daemon.
    var cliConfig: String { "\(directory)/cli-config" }

    /// Runs the atoll CLI against this daemon.
    func atoll(_ arguments: [String], stdin: String? = nil) -> Result {
        Self.run(
            "\(Self.binDirectory)/atoll", arguments,
            environment: ["ATOLL_HOST": "unix://\(socket)", "ATOLL_CONFIG": cliConfig], stdinFile: stdin)
    }

    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], stdinFile: String? = nil
    ) -> Result {
        do {
            let result = try Subprocess.run(executable, arguments, environment: environment, inputFile: stdinFile)
            return Result(status: result.status, stdout: result.stdout, stderr: result.stderr)
        } catch {
            return Result(status: -1, stdout: "", stderr: "\(error)")
        }
    }

    /// Runs a shell command line with ATOLL_HOST pointing at this daemon.
    func shellWithHost(_ command: String) -> Result {
        Self.run(
            "/bin/bash", ["-c", command], environment: ["ATOLL_HOST": "unix://\(socket)", "ATOLL_CONFIG": cliConfig])
    }

    /// Loads the busybox image.
    func loadBusybox() throws {
        let load = atoll(["load", "-i", BusyboxArchive.path])
        guard load.status == 0 else { throw FixtureError("load failed: \(load.stderr)") }
    }

    /// Waits up to `seconds` for `condition`.
    static func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// Runs a shell command line, for test set-up.
    @discardableResult
    static func shell(_ command: String) -> Result { run("/bin/bash", ["-c", command]) }

    /// Names of the blobs in the content store.
    func blobs() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(root)/content/blobs/sha256")) ?? []).sorted()
    }

    /// Names of the snapshot data directories of a driver.
    func snapshotDirectories(driver: String = "overlay") -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(root)/snapshots/\(driver)/snapshots")) ?? []).sorted()
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The busybox image archive from deploy/busybox-image, built once per test run.
enum BusyboxArchive {
    static let path: String = {
        // One fixed path, rebuilt by each test run (written aside, then renamed into place).
        let path = "/tmp/atoll-it-busybox.tar"
        let result = DaemonFixture.shell(
            "\(DaemonFixture.packageRoot)/deploy/busybox-image \(path).$$ busybox:latest && mv \(path).$$ \(path)")
        // Every image test needs it: without it the run stops here, saying why.
        precondition(result.status == 0, "deploy/busybox-image exited with \(result.status): \(result.stderr)")
        return path
    }()
}
