import AtollCore
import Foundation

/// An OCI runtime binary with runc's command line (runc and crun share it), with its state kept
/// under `stateRoot` so that several daemons on one machine never see each other's containers.
public struct OCIRuntime: Sendable, Equatable {
    public var name: String
    public var path: String
    public var stateRoot: String

    public init(name: String, path: String, stateRoot: String) {
        self.name = name
        self.path = path
        self.stateRoot = stateRoot
    }

    /// The runtime's global arguments, placed before every subcommand.
    public var globalArguments: [String] { ["--root", stateRoot] }

    /// What the runtime reports about a container.
    public struct State: Sendable, Decodable {
        public var id: String
        public var pid: Int32
        /// creating | created | running | paused | stopped
        public var status: String
    }

    public func start(_ id: String) throws { try run(["start", id], what: "start container \(id)") }

    public func kill(_ id: String, signal: Int32, all: Bool = false) throws {
        try run(["kill"] + (all ? ["--all"] : []) + [id, String(signal)], what: "signal container \(id)")
    }

    public func pause(_ id: String) throws { try run(["pause", id], what: "pause container \(id)") }

    public func resume(_ id: String) throws { try run(["resume", id], what: "unpause container \(id)") }

    /// Deletes the runtime's record of a stopped container (and its cgroup); with `force`, kills
    /// it first. A container the runtime does not know is already deleted.
    public func delete(_ id: String, force: Bool = false) throws {
        guard knows(id) else { return }
        let result = try ProcessLauncher.run(path, globalArguments + ["delete"] + (force ? ["--force"] : []) + [id])
        if result.succeeded || result.stderr.contains("does not exist") || result.stderr.contains("not found") {
            return
        }
        throw failure("delete container \(id)", result)
    }

    /// Whether the runtime keeps state for `id` (runc and crun keep a directory per container
    /// under their root): a cheap check that spares a process when there is nothing to delete.
    public func knows(_ id: String) -> Bool { FileSystem.exists("\(stateRoot)/\(id)") }

    /// The runtime's state of a container, or nil when it does not know it.
    public func state(_ id: String) throws -> State? {
        let result = try ProcessLauncher.run(path, globalArguments + ["state", id])
        guard result.succeeded else {
            if result.stderr.contains("does not exist") || result.stderr.contains("not found") { return nil }
            throw failure("query container \(id)", result)
        }
        do {
            return try JSONDecoder().decode(State.self, from: Data(result.stdout.utf8))
        } catch {
            throw AtollError.internalError("\(name) state \(id) printed something that is not its state", cause: error)
        }
    }

    /// The host pids of every process in the container.
    public func processes(_ id: String) throws -> [Int32] {
        let result = try ProcessLauncher.run(path, globalArguments + ["ps", "--format", "json", id])
        guard result.succeeded else { throw failure("list the processes of container \(id)", result) }
        return (try? JSONDecoder().decode([Int32].self, from: Data(result.stdout.utf8))) ?? []
    }

    private func run(_ arguments: [String], what: String) throws {
        let result = try ProcessLauncher.run(path, globalArguments + arguments)
        guard result.succeeded else { throw failure(what, result) }
    }

    private func failure(_ what: String, _ result: Subprocess.Result) -> AtollError {
        AtollError(.internalError, "\(name) could not \(what): \(Self.message(from: result.stderr + result.stdout))")
    }

    /// The useful part of a runtime's complaint: runc logs `time=… level=error msg="…"`.
    public static func message(from output: String) -> String {
        let lines = output.split(separator: "\n").map(String.init)
        guard let last = lines.last(where: { !$0.isEmpty }) else { return "no output" }
        if let range = last.range(of: "msg=\"") {
            var text = String(last[range.upperBound...])
            if text.hasSuffix("\"") { text.removeLast() }
            return text.replacingOccurrences(of: "\\\"", with: "\"")
        }
        return dockerWording(last)
    }

    /// crun words a missing command its own way; users (and scripts) know runc's and Docker's:
    /// `exec: "NAME": executable file not found in $PATH`.
    static func dockerWording(_ message: String) -> String {
        let prefix = "executable file `"
        guard let start = message.range(of: prefix),
            let end = message.range(of: "` not found in $PATH", range: start.upperBound..<message.endIndex)
        else {
            return message
        }
        let name = message[start.upperBound..<end.lowerBound]
        return "exec: \"\(name)\": executable file not found in $PATH"
    }
}
