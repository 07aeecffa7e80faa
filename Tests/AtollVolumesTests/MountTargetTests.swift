import AtollCore
import Foundation
import Testing

@testable import AtollVolumes

/// Mount targets resolve inside the root, as the container would see them, whatever symlinks the
/// image planted; nothing outside the root is ever created or touched.
struct MountTargetTests {
    final class Scratch {
        let base: String
        var root: String { "\(base)/root" }
        var outside: String { "\(base)/outside" }

        init() throws {
            base = "/tmp/atoll-mount-target-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: "\(base)/root/etc", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: "\(base)/outside", withIntermediateDirectories: true)
            try "canary".write(toFile: "\(base)/outside/canary", atomically: false, encoding: .utf8)
        }

        func link(_ name: String, to target: String) throws {
            try FileManager.default.createSymbolicLink(atPath: "\(root)/\(name)", withDestinationPath: target)
        }

        /// The outside directory holds only its canary, unchanged.
        func outsideUntouched() -> Bool {
            (try? FileManager.default.contentsOfDirectory(atPath: outside)) == ["canary"]
                && (try? String(contentsOfFile: "\(outside)/canary", encoding: .utf8)) == "canary"
        }

        deinit { try? FileManager.default.removeItem(atPath: base) }
    }

    @Test func missingDirectoriesAreCreated() throws {
        let scratch = try Scratch()
        #expect(try MountTarget.prepare("/var/lib/data", in: scratch.root) == "/var/lib/data")
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: "\(scratch.root)/var/lib/data", isDirectory: &isDirectory))
        #expect(isDirectory.boolValue)
        #expect(try MountTarget.prepare("/etc/app.conf", in: scratch.root, file: true) == "/etc/app.conf")
        #expect(FileManager.default.fileExists(atPath: "\(scratch.root)/etc/app.conf", isDirectory: &isDirectory))
        #expect(!isDirectory.boolValue)
    }

    @Test func anAbsoluteSymlinkToTheHostStaysInsideTheRoot() throws {
        let scratch = try Scratch()
        try scratch.link("evil", to: scratch.outside)
        #expect(try MountTarget.prepare("/evil", in: scratch.root) == scratch.outside)
        #expect(FileManager.default.fileExists(atPath: scratch.root + scratch.outside))
        #expect(scratch.outsideUntouched())
    }

    @Test func climbingSymlinksStopAtTheRoot() throws {
        let scratch = try Scratch()
        try scratch.link("up", to: "../../../../../../outside")
        try scratch.link("etc/chain", to: "/up/deeper")
        #expect(try MountTarget.prepare("/etc/chain/x", in: scratch.root) == "/outside/deeper/x")
        #expect(FileManager.default.fileExists(atPath: "\(scratch.root)/outside/deeper/x"))
        #expect(try MountTarget.prepare("/../../outside/y", in: scratch.root) == "/outside/y")
        #expect(scratch.outsideUntouched())
    }

    @Test func aDanglingSymlinkIsCreatedInsideTheRoot() throws {
        let scratch = try Scratch()
        try scratch.link("var", to: "/real/var")
        #expect(try MountTarget.prepare("/var/run", in: scratch.root) == "/real/var/run")
        #expect(FileManager.default.fileExists(atPath: "\(scratch.root)/real/var/run"))
    }

    @Test func loopsAndFilesInThePathAreErrors() throws {
        let scratch = try Scratch()
        try scratch.link("loop", to: "/loop")
        #expect { try MountTarget.prepare("/loop/x", in: scratch.root) } throws: { error in
            "\(error)".contains("too many levels of symbolic links")
        }
        try "x".write(toFile: "\(scratch.root)/etc/file", atomically: false, encoding: .utf8)
        #expect { try MountTarget.prepare("/etc/file/sub", in: scratch.root) } throws: { error in
            "\(error)".contains("is not a directory")
        }
        try scratch.link("toroot", to: "/")
        #expect { try MountTarget.prepare("/toroot", in: scratch.root) } throws: { error in
            "\(error)".contains("resolves to the container's root")
        }
        #expect(scratch.outsideUntouched())
    }
}
