import AtollCore
import Foundation
import Synchronization

/// Compiled seccomp programs, so that crun compiles a profile once rather than per container.
///
/// crun turns a spec's seccomp profile into a BPF program on every `create` (about 25 ms for the
/// default profile, most of a container's start) and writes the program it loads to
/// `<state root>/<id>/seccomp.bpf`. It also takes a ready program in the `run.oci.seccomp_bpf_data`
/// annotation. This keeps the program crun compiled for the first container with a profile and
/// hands it to the next containers with the same profile: crun's own output, so the filter the
/// kernel gets is the same. runc has no such annotation and compiles every time.
public final class SeccompPrograms: Sendable {
    public static let annotation = "run.oci.seccomp_bpf_data"
    /// A BPF program holds at most 4096 instructions of 8 bytes (BPF_MAXINSNS).
    static let maximumSize = 4096 * 8
    /// Distinct profiles kept; custom profiles beyond this are compiled by crun each time.
    static let capacity = 32

    private let programs = Mutex<[String: String]>([:])
    /// Keys already computed: encoding and hashing a profile costs more than looking it up.
    private let keys = Mutex<[Profile: String]>([:])

    private struct Profile: Hashable {
        var seccomp: Seccomp
        var runtimePath: String
    }

    public init() {}

    /// The key of a profile for one runtime binary, or nil when that runtime cannot take a program.
    public func key(for seccomp: Seccomp?, runtime: OCIRuntime) -> String? {
        guard runtime.name == "crun", let seccomp else { return nil }
        let profile = Profile(seccomp: seccomp, runtimePath: runtime.path)
        if let known = keys.withLock({ $0[profile] }) { return known }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let json = try? encoder.encode(seccomp) else { return nil }
        let key = Digest.sha256(of: Array(runtime.path.utf8) + [0] + Array(json)).hex
        keys.withLock { keys in
            if keys.count < Self.capacity { keys[profile] = key }
        }
        return key
    }

    /// The compiled program for `key` (base64, as the annotation wants it), if known.
    public func program(for key: String) -> String? { programs.withLock { $0[key] } }

    /// Keeps the program crun compiled for container `id`, read from its state directory.
    /// Anything unexpected there (missing, empty, not whole instructions, too long) is ignored:
    /// crun then simply compiles again next time.
    public func learn(_ key: String, runtime: OCIRuntime, id: String) {
        guard programs.withLock({ $0[key] == nil && $0.count < Self.capacity }) else { return }
        guard let bytes = try? FileSystem.readFile("\(runtime.stateRoot)/\(id)/seccomp.bpf", limit: Self.maximumSize),
            !bytes.isEmpty, bytes.count % 8 == 0
        else { return }
        let program = Data(bytes).base64EncodedString()
        programs.withLock { $0[key] = program }
    }
}
