import AtollCore
import Foundation
import Glibc
import Testing

@testable import AtollRuntime

@Suite struct SeccompProgramsTests {
    static let profile = SecurityDefaults.seccompProfile(capabilities: SecurityDefaults.defaultCapabilities)

    /// A state root laid out as crun's: `<root>/<id>/seccomp.bpf`.
    func stateRoot(_ files: [String: [UInt8]]) throws -> String {
        let root = "/tmp/atoll-seccomp-\(UUID().uuidString.prefix(8))"
        for (id, bytes) in files {
            try Syscall.mkdirAll("\(root)/\(id)")
            try FileSystem.writeFile("\(root)/\(id)/seccomp.bpf", bytes)
        }
        return root
    }

    @Test func onlyCrunWithAProfileGetsAKey() {
        let programs = SeccompPrograms()
        let crun = OCIRuntime(name: "crun", path: "/usr/bin/crun", stateRoot: "/tmp")
        let runc = OCIRuntime(name: "runc", path: "/usr/sbin/runc", stateRoot: "/tmp")
        #expect(programs.key(for: Self.profile, runtime: crun) != nil)
        #expect(programs.key(for: Self.profile, runtime: runc) == nil)
        #expect(programs.key(for: nil, runtime: crun) == nil)
    }

    @Test func theKeyFollowsTheProfileAndTheRuntimeBinary() {
        let programs = SeccompPrograms()
        let crun = OCIRuntime(name: "crun", path: "/usr/bin/crun", stateRoot: "/tmp")
        let otherCrun = OCIRuntime(name: "crun", path: "/opt/crun", stateRoot: "/tmp")
        let sysAdmin = SecurityDefaults.seccompProfile(
            capabilities: SecurityDefaults.defaultCapabilities + ["SYS_ADMIN"])
        let key = programs.key(for: Self.profile, runtime: crun)
        #expect(key == programs.key(for: Self.profile, runtime: crun))
        #expect(key != programs.key(for: sysAdmin, runtime: crun))
        #expect(key != programs.key(for: Self.profile, runtime: otherCrun))
    }

    @Test func aCompiledProgramIsLearnedOnceAndHandedOutAsBase64() throws {
        let program: [UInt8] = (0..<64).map { UInt8($0) }
        let root = try stateRoot(["first": program, "second": [UInt8](repeating: 9, count: 16)])
        defer { try? FileSystem.removeTree(root) }
        let crun = OCIRuntime(name: "crun", path: "/usr/bin/crun", stateRoot: root)
        let programs = SeccompPrograms()
        let key = try #require(programs.key(for: Self.profile, runtime: crun))
        #expect(programs.program(for: key) == nil)
        programs.learn(key, runtime: crun, id: "first")
        #expect(programs.program(for: key) == Data(program).base64EncodedString())
        programs.learn(key, runtime: crun, id: "second")
        #expect(programs.program(for: key) == Data(program).base64EncodedString(), "the first program stays")
    }

    @Test func somethingThatIsNotAProgramIsNotLearned() throws {
        let root = try stateRoot(["empty": [], "ragged": [1, 2, 3], "huge": [UInt8](repeating: 0, count: 4097 * 8)])
        defer { try? FileSystem.removeTree(root) }
        let crun = OCIRuntime(name: "crun", path: "/usr/bin/crun", stateRoot: root)
        let programs = SeccompPrograms()
        let key = try #require(programs.key(for: Self.profile, runtime: crun))
        for id in ["empty", "ragged", "huge", "missing"] {
            programs.learn(key, runtime: crun, id: id)
            #expect(programs.program(for: key) == nil, "\(id)")
        }
    }
}
