import AtollCore
import AtollRuntime
import Foundation
import Glibc
import Logging

/// An OCI runtime on this host and whether it really runs a container here.
public struct RuntimeStatus: Sendable {
    public var name: String
    public var path: String
    public var version: String
    public var works: Bool
    public var problem: String
    /// Where the daemon runs it from: a sealed copy of `path` when one could be made.
    public var sealedPath: String?

    /// The runtime as containers use it.
    func runtime(stateRoot: String) -> OCIRuntime {
        OCIRuntime(name: name, path: sealedPath ?? path, stateRoot: stateRoot)
    }
}

/// Finds crun and runc and checks each by running a real (tiny) container: a version string says
/// nothing about whether the runtime copes with this host's cgroup layout (crun 1.8 refuses hybrid
/// cgroups while hugetlb sits on the v2 hierarchy; runc does not).
public enum RuntimeProbe {
    public static let candidates = ["crun", "runc"]

    /// Probes every installed candidate. `workDirectory` is where the probe bundles go.
    public static func probeAll(workDirectory: String) -> [RuntimeStatus] {
        candidates.compactMap { name in
            guard let path = Subprocess.which(name) else { return nil }
            return probe(name: name, path: path, workDirectory: workDirectory)
        }
    }

    static func probe(name: String, path: String, workDirectory: String) -> RuntimeStatus {
        var status = RuntimeStatus(name: name, path: path, version: "", works: false, problem: "", sealedPath: nil)
        if let result = try? Subprocess.run(path, ["--version"]) {
            status.version =
                result.stdout.split(separator: "\n").first.map {
                    String($0).replacingOccurrences(of: "\(name) version ", with: "")
                } ?? ""
        }
        guard let probeBinary = staticProbeBinary() else {
            status.problem = "not checked: no static binary (busybox-static or catatonit) to run in a probe container"
            return status
        }
        let id = "atoll-probe-\(name)-\(Identifier.random().prefix(12))"
        let bundle = "\(workDirectory)/\(id)"
        defer {
            _ = try? Subprocess.run(path, ["delete", "--force", id])
            try? FileSystem.removeTree(bundle)
        }
        do {
            // crun wants the mount points to exist (runc makes them).
            for directory in ["rootfs/dev", "rootfs/proc"] { try Syscall.mkdirAll("\(bundle)/\(directory)") }
            let data = try Data(contentsOf: URL(fileURLWithPath: probeBinary.path))
            try data.write(to: URL(fileURLWithPath: "\(bundle)/rootfs\(probeBinary.args[0])"))
            chmod("\(bundle)/rootfs\(probeBinary.args[0])", 0o755)
            try FileSystem.writeFileAtomically("\(bundle)/config.json", Array(probeSpec(args: probeBinary.args).utf8))
            let result = try Subprocess.run(path, ["run", "--bundle", bundle, id])
            if result.succeeded {
                status.works = true
            } else {
                let words = (result.stderr + result.stdout).split(separator: "\n").last.map(String.init)
                status.problem = words ?? "exit status \(result.status)"
            }
        } catch {
            status.problem = "probe failed: \(error)"
        }
        return status
    }

    /// The runtimes that skip re-executing themselves when run from a read-only mount.
    static let sealable: Set<String> = ["crun"]

    /// Mounts each working crun read-only under `directory` to run it from there (see
    /// `SealedRuntimeBinary`); one that cannot be sealed runs from its own path.
    static func seal(_ statuses: [RuntimeStatus], in directory: String, logger: Logger) -> [RuntimeStatus] {
        statuses.map { status in
            guard status.works, sealable.contains(status.name) else { return status }
            var sealed = status
            let target = "\(directory)/\(status.name)"
            do {
                try SealedRuntimeBinary.seal(status.path, at: target)
                sealed.sealedPath = target
            } catch {
                logger.warning(
                    "\(status.name) runs from \(status.path): cannot mount it read-only at \(target): \(error)")
            }
            return sealed
        }
    }

    /// Removes the mounts `seal` made.
    static func unseal(_ statuses: [RuntimeStatus]) {
        for path in statuses.compactMap(\.sealedPath) { SealedRuntimeBinary.unseal(path) }
    }

    private static func staticProbeBinary() -> (path: String, args: [String])? {
        // busybox picks its applet from argv[0], so the copy is named after the applet.
        if FileSystem.exists("/bin/busybox") { return ("/bin/busybox", ["/true"]) }
        if let catatonit = Subprocess.which("catatonit") { return (catatonit, ["/catatonit", "--version"]) }
        return nil
    }

    /// The smallest spec that still exercises namespaces and cgroups the way containers will.
    private static func probeSpec(args: [String]) -> String {
        let argv = args.map { "\"\($0)\"" }.joined(separator: ",")
        return """
            {"ociVersion":"1.0.2","process":{"terminal":false,"user":{"uid":0,"gid":0},"args":[\(argv)],
            "env":["PATH=/"],"cwd":"/","noNewPrivileges":true},
            "root":{"path":"rootfs","readonly":true},"hostname":"probe",
            "mounts":[{"destination":"/proc","type":"proc","source":"proc"}],
            "linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"network"}],
            "resources":{"pids":{"limit":16}}}}
            """
    }
}
