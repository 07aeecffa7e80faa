import AtollBuild
import AtollCore
import AtollOCI
import AtollRuntime
import AtollStorage
import CAtollShim
import Foundation
import Glibc
import Synchronization

extension StageBuild {
    /// RUN: runs the command in a container on a snapshot of the current tree and commits what it
    /// changed as a layer — or takes that layer from the cache.
    func runStep(_ run: RunCommand, instruction: Instruction, id: Int, report: (Bool) -> Void) async throws {
        let shell = state.runConfig.shell.flatMap { $0.isEmpty ? nil : $0 } ?? ["/bin/sh", "-c"]
        let arguments: [String]
        switch run.form {
        case .exec(let argv):
            guard !argv.isEmpty else { throw AtollError.invalidArgument("RUN needs a command") }
            arguments = argv
        case .shell(let line):
            arguments = shell + [Self.script(line, heredocs: run.heredocs)]
        }
        let network = run.network ?? session.request.network
        let createdBy: String
        switch run.form {
        case .exec(let argv): createdBy = "RUN \(Self.json(argv)) # atoll"
        case .shell: createdBy = "RUN \(arguments.joined(separator: " ")) # atoll"
        }
        let environment = runEnvironment()
        let key = CacheKey.derive(state.key, ["RUN", network] + arguments + ["ENV"] + environment)
        if try await fromCache(key, createdBy: createdBy) {
            report(true)
            return
        }
        report(false)
        let step = RunStepSpec(
            arguments: arguments, environment: environment, workdir: state.runConfig.workingDir ?? "",
            user: state.runConfig.user ?? "", network: network, text: instruction.text)
        let (builder, workspace, events) = (builder, session.workspace, session.events)
        try await commitStep(key: key, createdBy: createdBy) { snapshot in
            try await builder.run(step, in: snapshot, workspace: workspace) { data in
                events(.output(id: id, data: data))
            }
            return true
        }
    }

    /// A shell-form command with its heredocs: `RUN <<EOF` alone runs the first body as the script;
    /// otherwise the bodies follow the command line for the shell to read, as BuildKit does.
    static func script(_ line: String, heredocs: [Heredoc]) -> String {
        guard let first = heredocs.first else { return line }
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if heredocs.count == 1, trimmed.hasPrefix("<<"),
            trimmed.drop(while: { $0 == "<" || $0 == "-" }).filter({ $0 != "\"" && $0 != "'" }) == first.name
        {
            return first.content
        }
        return heredocs.reduce(line) { $0 + "\n" + $1.content + $1.name }
    }

    /// RUN's environment: the config's ENV, the stage's ARGs that ENV does not set, and a PATH.
    func runEnvironment() -> [String] {
        var environment = state.runConfig.env ?? []
        let set = Set(environment.map { String($0.prefix { $0 != "=" }) })
        for (name, value) in args.sorted(by: { $0.key < $1.key }) {
            guard let value, !set.contains(name) else { continue }
            environment.append("\(name)=\(value)")
        }
        if !environment.contains(where: { $0.hasPrefix("PATH=") }) {
            environment.insert(ContainerService.defaultPath, at: 0)
        }
        return environment
    }

    static func json(_ strings: [String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(strings)).map { String(decoding: $0, as: UTF8.self) } ?? "\(strings)"
    }
}

/// What a RUN step runs, resolved.
struct RunStepSpec: Sendable {
    var arguments: [String]
    var environment: [String]
    var workdir: String
    var user: String
    /// "default" and "host": the host's network stack (as BuildKit's host mode; no ports are
    /// published from a build); "none": loopback only.
    var network: String
    var text: String
}

extension Builder {
    /// Runs a RUN step's command through the OCI runtime, in the foreground, on the snapshot
    /// `key` mounted for the purpose; its output goes to `output` as it comes. Fails with the
    /// exit status and the last lines of output when the command fails. Cancelling kills it.
    func run(
        _ step: RunStepSpec, in key: String, workspace: BuildWorkspace,
        output: @escaping @Sendable ([UInt8]) -> Void
    ) async throws {
        let runtime = try containers.runtime(named: "")
        let name = workspace.nextName("run")
        let bundle = "\(workspace.directory)/\(name)"
        let rootfs = "\(bundle)/rootfs"
        try Syscall.mkdirAll(rootfs, mode: 0o755)
        defer {
            try? runtime.delete(name, force: true)
            try? Mount.unmountAll(at: rootfs)
            BuildWorkspace.remove(bundle)
        }
        for mount in try snapshotter.mounts(key) { try mount.mount(at: rootfs) }
        let placeholders = try MountPlaceholders(rootfs: rootfs)
        let spec = try makeSpec(step, rootfs: rootfs, bundle: bundle, name: name)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try FileSystem.writeFile("\(bundle)/config.json", Array(try encoder.encode(spec)))

        let cancelled = CancelFlag()
        let (status, tail) = try await withTaskCancellationHandler {
            try await BlockingWork.runOnOwnThread {
                try Self.runInForeground(runtime, name: name, bundle: bundle, cancelled: cancelled, output: output)
            }
        } onCancel: {
            cancelled.set()
        }
        // The runtime made mount points the tree did not have (/proc, /dev, ...): not part of the layer.
        placeholders.removeCreated()
        if cancelled.isSet { throw CancellationError() }
        guard status == 0 else {
            let lines = String(decoding: tail, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
                .suffix(8).map { "  " + $0 }.joined(separator: "\n")
            throw AtollError(
                .failedPrecondition,
                "\(step.text.prefix(200)): the command exited with status \(status)"
                    + (lines.isEmpty ? "" : "; its last output:\n\(lines)"))
        }
    }

    private func makeSpec(_ step: RunStepSpec, rootfs: String, bundle: String, name: String) throws -> RuntimeSpec {
        var cwd = step.workdir.isEmpty ? "/" : step.workdir
        if !cwd.hasPrefix("/") { cwd = "/" + cwd }
        // The working directory exists before the command runs (WORKDIR creates it, as in Docker).
        let root = try Syscall.open(rootfs, flags: O_RDONLY | O_DIRECTORY)
        defer { root.close() }
        _ = try RootedPath.makeDirectories(cwd, in: root, owner: nil).close()
        let user: ResolvedUser
        do {
            user = try UserLookup.resolve(step.user, rootfs: rootfs)
        } catch {
            throw AtollError.invalidArgument("cannot run as user \"\(step.user)\": \(error)")
        }
        var input = SpecInput(
            rootfs: rootfs, args: step.arguments, env: step.environment, cwd: cwd, user: user, hostname: "atoll-build")
        input.cgroupsPath = "/atoll/\(name)"
        input.annotations = ["org.atoll.build.step": step.text]
        if step.network == "none" {
            input.networkNamespace = nil
        } else {
            input.hostNetwork = true
            // On the host's network a step must not see or forge the host's traffic.
            input.capDrop = ["NET_RAW"]
            // Name resolution as the host has it (mount points the image lacks are removed after).
            for file in ["hosts", "resolv.conf"] where FileSystem.exists("/etc/\(file)") {
                let copy = "\(bundle)/\(file)"
                try FileSystem.writeFile(copy, (try? FileSystem.readFile("/etc/\(file)")) ?? [])
                input.etcFiles.append(("/etc/\(file)", copy))
            }
        }
        return try SpecBuilder.build(input)
    }

    /// Starts `runtime run` with stdout and stderr on one pipe, hands its output on as it comes
    /// and returns the exit status and the last 4 KiB of output. Kills the container once
    /// `cancelled` is set.
    private static func runInForeground(
        _ runtime: OCIRuntime, name: String, bundle: String, cancelled: CancelFlag,
        output: @Sendable ([UInt8]) -> Void
    ) throws -> (Int32, [UInt8]) {
        let (reader, writer) = try ProcessLauncher.pipe()
        let pid = try ProcessLauncher.spawn(
            runtime.path, runtime.globalArguments + ["run", "--bundle", bundle, name],
            environment: [ContainerService.defaultPath], descriptors: [nil, writer.rawValue, writer.rawValue])
        writer.close()
        var tail: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var killed = false
        var lastKill = ContinuousClock.now - .seconds(1)
        while true {
            if cancelled.isSet && !killed && ContinuousClock.now - lastKill > .milliseconds(250) {
                // Retried (4 times a second at most): the container may not exist yet when the
                // build is cancelled. Without a container the runtime process itself goes.
                lastKill = .now
                killed = (try? runtime.kill(name, signal: SIGKILL, all: true)) != nil
                if !killed && !runtime.knows(name) { Glibc.kill(pid, SIGKILL) }
            }
            var descriptor = pollfd(fd: reader.rawValue, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 200)
            if ready <= 0 { continue }
            let count = buffer.withUnsafeMutableBytes { read(reader.rawValue, $0.baseAddress, $0.count) }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if count <= 0 { break }
            let chunk = Array(buffer[0..<count])
            output(chunk)
            tail += chunk
            if tail.count > 4096 { tail.removeFirst(tail.count - 4096) }
        }
        return (try ProcessLauncher.wait(pid), tail)
    }
}

/// The mount points a runtime creates in a root that lacks them (/proc, /sys, /dev, and /etc
/// with the hosts and resolv.conf files mounted there): noted before a RUN so that those it made
/// can be removed before the layer is taken. Nothing is followed through a link.
struct MountPlaceholders {
    let rootfs: String
    let missingDirectories: [String]
    let missingFiles: [String]
    static let beneath = UInt64(ATOLL_RESOLVE_BENEATH | ATOLL_RESOLVE_NO_SYMLINKS)

    init(rootfs: String) throws {
        self.rootfs = rootfs
        let root = try Syscall.open(rootfs, flags: O_RDONLY | O_DIRECTORY)
        defer { root.close() }
        missingDirectories = ["proc", "sys", "dev", "etc"].filter {
            (try? Syscall.stat($0, at: root.rawValue, followSymlinks: false)) == nil
        }
        let etc = try? Syscall.openat2(root.rawValue, "etc", flags: O_RDONLY | O_DIRECTORY, resolve: Self.beneath)
        defer { etc?.close() }
        missingFiles = ["hosts", "resolv.conf"].filter { name in
            guard let etc else { return true }
            return (try? Syscall.stat(name, at: etc.rawValue, followSymlinks: false)) == nil
        }
    }

    func removeCreated() {
        guard let root = try? Syscall.open(rootfs, flags: O_RDONLY | O_DIRECTORY) else { return }
        defer { root.close() }
        if let etc = try? Syscall.openat2(root.rawValue, "etc", flags: O_RDONLY | O_DIRECTORY, resolve: Self.beneath) {
            defer { etc.close() }
            for name in missingFiles {
                // Only the empty file the runtime made to mount on; anything else the step wrote.
                guard let status = try? Syscall.stat(name, at: etc.rawValue, followSymlinks: false),
                    status.st_mode & S_IFMT == S_IFREG, status.st_size == 0
                else { continue }
                unlinkat(etc.rawValue, name, 0)
            }
        }
        // Only empty directories go: the command may have put something in them.
        for name in missingDirectories { unlinkat(root.rawValue, name, AT_REMOVEDIR) }
    }
}

/// Set once when a step is cancelled; read by the thread that waits for its process.
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}
