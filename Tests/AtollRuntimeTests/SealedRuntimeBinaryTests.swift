import AtollCore
import Foundation
import Glibc
import Testing

@testable import AtollRuntime

/// Real bind mounts (the tests run as root).
@Suite struct SealedRuntimeBinaryTests {
    /// A scratch directory with a copy of /bin/true standing in for a runtime binary.
    func scratch() throws -> (directory: String, binary: String) {
        let directory = "/tmp/atoll-seal-\(UUID().uuidString.prefix(8))"
        try Syscall.mkdirAll(directory)
        let binary = "\(directory)/runtime"
        try FileSystem.writeFile(binary, try FileSystem.readFile("/bin/true"))
        chmod(binary, 0o755)
        return (directory, binary)
    }

    /// How many mounts /proc/self/mountinfo lists at `path`.
    func mounts(at path: String) -> Int {
        let info = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return info.split(separator: "\n").filter { $0.split(separator: " ").dropFirst(4).first == Substring(path) }
            .count
    }

    @Test func theSealedBinaryRunsAndCannotBeWritten() throws {
        let (directory, binary) = try scratch()
        defer { try? FileSystem.removeTree(directory) }
        let target = "\(directory)/sealed/runtime"
        try SealedRuntimeBinary.seal(binary, at: target)
        defer { SealedRuntimeBinary.unseal(target) }

        #expect(mounts(at: target) == 1)
        #expect(SealedRuntimeBinary.isReadOnly(target))
        #expect(!SealedRuntimeBinary.isReadOnly(binary))
        // What CVE-2019-5736 needs: opening the running binary for writing. EROFS here.
        let opened = open(target, O_WRONLY)
        let error = errno
        if opened >= 0 { close(opened) }
        #expect(opened == -1 && error == EROFS)
        #expect(try Subprocess.run(target, []).status == 0)
    }

    @Test func sealingAgainReplacesTheMountAndUnsealingRemovesIt() throws {
        let (directory, binary) = try scratch()
        defer { try? FileSystem.removeTree(directory) }
        let target = "\(directory)/runtime-sealed"
        try SealedRuntimeBinary.seal(binary, at: target)
        // A daemon started again after an upgrade: the new binary, one mount.
        try FileSystem.writeFile(binary, try FileSystem.readFile("/bin/false"))
        try SealedRuntimeBinary.seal(binary, at: target)
        #expect(mounts(at: target) == 1)
        #expect(try Subprocess.run(target, []).status == 1)

        SealedRuntimeBinary.unseal(target)
        #expect(mounts(at: target) == 0)
        #expect(!SealedRuntimeBinary.isReadOnly(target))
    }

    @Test func aMissingBinaryIsAnErrorThatLeavesNoMount() throws {
        let (directory, _) = try scratch()
        defer { try? FileSystem.removeTree(directory) }
        let target = "\(directory)/runtime-sealed"
        #expect(throws: SystemCallError.self) { try SealedRuntimeBinary.seal("\(directory)/missing", at: target) }
        #expect(mounts(at: target) == 0)
    }
}
