import AtollCore
import Glibc

/// A read-only bind mount of an OCI runtime's binary, from which the daemon runs the runtime.
///
/// crun guards against CVE-2019-5736 (a container process overwriting the runtime's binary on the
/// host through /proc/PID/exe) by bind-mounting its own binary read-only and re-executing itself
/// on every call: about 2 ms for each create, start and delete. A binary that already runs from a
/// read-only mount cannot be written through that path, and crun checks for one and skips the
/// step. The daemon makes the mount once, when it probes the runtimes. (runc 1.1 copies itself
/// into a sealed memfd in `runc init` whatever it runs from, so it gains nothing from this.)
public enum SealedRuntimeBinary {
    /// Bind-mounts `binary` read-only at `target`, replacing whatever an earlier daemon left
    /// there (so a runtime upgraded meanwhile is picked up), and checks the result is read-only.
    /// Nothing stays mounted when this throws.
    public static func seal(_ binary: String, at target: String) throws {
        try Syscall.mkdirAll(String(target[..<(target.lastIndex(of: "/") ?? target.startIndex)]), mode: 0o700)
        unseal(target)
        if !FileSystem.exists(target) {
            _ = try Syscall.open(target, flags: O_WRONLY | O_CREAT | O_CLOEXEC, mode: 0o500)
        }
        try Syscall.mount(source: binary, target: target, type: "none", flags: UInt(MS_BIND))
        do {
            try Syscall.mount(
                source: "none", target: target, type: "none",
                flags: UInt(MS_REMOUNT) | UInt(MS_BIND) | UInt(MS_RDONLY) | UInt(MS_NOSUID))
            guard isReadOnly(target) else {
                throw AtollError.internalError("the bind mount of \(binary) at \(target) is not read-only")
            }
        } catch {
            unseal(target)
            throw error
        }
    }

    /// Removes the mounts at `target` (lazily: a runtime still running from it finishes).
    public static func unseal(_ target: String) {
        var layers = 0
        while layers < 8, umount2(target, Int32(MNT_DETACH)) == 0 { layers += 1 }
    }

    /// Whether the file system holding `path` is mounted read-only: what crun checks.
    public static func isReadOnly(_ path: String) -> Bool {
        var info = statvfs()
        return statvfs(path, &info) == 0 && info.f_flag & UInt(ST_RDONLY) != 0
    }
}
