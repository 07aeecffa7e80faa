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

    init(storageDriver: String? = nil, extraArguments: [String] = [], start: Bool = true) throws {
        self.extraArguments = extraArguments
        directory = "/tmp/atoll-it-\(UUID().uuidString.prefix(8).lowercased())"
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
        process.executableURL = URL(fileURLWithPath: "\(Self.binDirectory)/atolld")
        var arguments = ["--root", root, "--socket", socket, "--exec-root", runDirectory, "--log-level", "debug"]
        if let storageDriver { arguments += ["--storage-driver", storageDriver] }
        process.arguments = arguments + extraArguments
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
        }
        for pid in monitorPids() { kill(pid, SIGKILL) }
        stop()
        // Anything still mounted below the scratch directory (a failed test) goes first.
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n").reversed() {
            let fields = line.split(separator: " ")
            if fields.count > 4, fields[4].hasPrefix(directory) { umount2(String(fields[4]), Int32(MNT_DETACH)) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the atoll CLI against this daemon.
    func atoll(_ arguments: [String], stdin: String? = nil) -> Result {
        Self.run(
            "\(Self.binDirectory)/atoll", arguments, environment: ["ATOLL_HOST": "unix://\(socket)"], stdinFile: stdin)
    }

    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], stdinFile: String? = nil
    ) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        if let stdinFile { process.standardInput = FileHandle(forReadingAtPath: stdinFile) }
        do { try process.run() } catch { return Result(status: -1, stdout: "", stderr: "\(error)") }
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs a shell command line with ATOLL_HOST pointing at this daemon.
    func shellWithHost(_ command: String) -> Result {
        Self.run("/bin/bash", ["-c", command], environment: ["ATOLL_HOST": "unix://\(socket)"])
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
        precondition(result.status == 0, "deploy/busybox-image failed: \(result.stderr)")
        return path
    }()
}
