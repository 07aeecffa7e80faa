import AtollCore
import Foundation
import Glibc
import Testing

@testable import AtollStorage

@Suite struct MountOperationsTests {
    @Test func aReadOnlyBindMountRefusesWrites() throws {
        try withTemporaryDirectory { root in
            try Syscall.mkdir(root + "/source")
            try writeFile(root + "/source/file", "hello")
            try Syscall.mkdir(root + "/target")
            try Mount(type: "bind", source: root + "/source", options: ["rbind", "ro"]).mount(at: root + "/target")
            defer { try? Mount.unmountAll(at: root + "/target") }
            #expect(Mount.isMountPoint(root + "/target"))
            #expect(try readText(root + "/target/file") == "hello")
            do {
                try writeFile(root + "/target/new", "x")
                Issue.record("a write to a read-only bind mount succeeded")
            } catch let error as SystemCallError {
                #expect(error.errno == EROFS)
            }
            try Mount.unmountAll(at: root + "/target")
            #expect(!Mount.isMountPoint(root + "/target"))
            // The source stays writable.
            try writeFile(root + "/source/new", "x")
        }
    }

    @Test(arguments: [OverlayMountMethod.classic, .mountAPI])
    func aSmallOverlayMountsEitherWay(_ method: OverlayMountMethod) throws {
        try withTemporaryDirectory { root in
            for name in ["l1", "l2", "upper", "work", "merged"] { try Syscall.mkdir(root + "/" + name) }
            try writeFile(root + "/l1/a", "l1")
            try writeFile(root + "/l2/a", "l2")
            try writeFile(root + "/l2/b", "l2")
            let mount = Mount(
                type: "overlay", source: "overlay",
                options: ["lowerdir=\(root)/l1:\(root)/l2", "upperdir=\(root)/upper", "workdir=\(root)/work"])
            try mount.mount(at: root + "/merged", overlayMethod: method)
            defer { try? Mount.unmountAll(at: root + "/merged") }
            #expect(try readText(root + "/merged/a") == "l1")  // the first lower directory wins
            #expect(try readText(root + "/merged/b") == "l2")
            try writeFile(root + "/merged/c", "up")
            #expect(try readText(root + "/upper/c") == "up")
        }
    }

    @Test func anOverlayOf150LowerDirectoriesNeedsTheNewMountAPI() throws {
        try withTemporaryDirectory { root in
            var lower: [String] = []
            for index in 0..<150 {
                let directory = "\(root)/lower-directory-with-a-long-name-\(index)"
                try Syscall.mkdir(directory)
                try writeFile("\(directory)/f\(index)", "\(index)")
                lower.append(directory)
            }
            try Syscall.mkdir(root + "/merged")
            let mount = Mount(
                type: "overlay", source: "overlay", options: ["lowerdir=" + lower.joined(separator: ":"), "ro"])
            #expect(errorCode { try mount.mount(at: root + "/merged", overlayMethod: .classic) } == .resourceExhausted)
            try mount.mount(at: root + "/merged")
            defer { try? Mount.unmountAll(at: root + "/merged") }
            #expect(try readText(root + "/merged/f0") == "0")
            #expect(try readText(root + "/merged/f149") == "149")
            #expect(throws: SystemCallError.self) { try writeFile(root + "/merged/new", "x") }
        }
    }

    @Test func aFailedOverlayMountNamesTheTargetAndTheKernelsReason() throws {
        try withTemporaryDirectory { root in
            try Syscall.mkdir(root + "/merged")
            let mount = Mount(
                type: "overlay", source: "overlay",
                options: ["lowerdir=\(root)/missing", "upperdir=\(root)/upper", "workdir=\(root)/work"])
            let message = errorMessage { try mount.mount(at: root + "/merged") } ?? ""
            #expect(message.contains(root + "/merged"))
            #expect(message.contains("missing"))
            #expect(!Mount.isMountPoint(root + "/merged"))
        }
    }

    @Test func unmountAllRemovesStackedMountsAndIgnoresPlainDirectories() throws {
        try withTemporaryDirectory { root in
            for name in ["a", "b", "target"] { try Syscall.mkdir(root + "/" + name) }
            try writeFile(root + "/a/file", "a")
            try writeFile(root + "/b/file", "b")
            try Mount(type: "bind", source: root + "/a", options: ["bind"]).mount(at: root + "/target")
            try Mount(type: "bind", source: root + "/b", options: ["bind"]).mount(at: root + "/target")
            #expect(try readText(root + "/target/file") == "b")
            try Mount.unmountAll(at: root + "/target")
            #expect(!Mount.isMountPoint(root + "/target"))
            #expect(!FileSystem.exists(root + "/target/file"))
            try Mount.unmountAll(at: root + "/target")
            try Mount.unmountAll(at: root + "/does-not-exist")
        }
    }

    @Test func lowerDirectoriesSplitOnUnescapedColons() {
        #expect(Mount.splitLowerDirectories("/a:/b\\:c:/d") == ["/a", "/b:c", "/d"])
    }

    @Test func theBackingFileSystemIsProbed() throws {
        try withTemporaryDirectory { root in
            let backing = try BackingFileSystem.probe(root)
            #expect(!backing.type.isEmpty && backing.type != "unknown")
            #expect(backing.supportsDType)
            let (supported, message) = OverlaySnapshotter.supported(at: root)
            #expect(supported, "\(message)")
            #expect(message.contains(backing.type))
            #expect(try FileSystem.listDirectory(Syscall.open(root, flags: O_RDONLY)).isEmpty)
        }
    }

    @Test func overlayOnAnOverlayUpperIsRefusedWithAClearMessage() throws {
        try withTemporaryDirectory { root in
            // An overlay's merged directory cannot serve as another overlay's upper directory.
            for name in ["lower", "upper", "work", "merged"] { try Syscall.mkdir(root + "/" + name) }
            try Mount(
                type: "overlay", source: "overlay",
                options: ["lowerdir=\(root)/lower", "upperdir=\(root)/upper", "workdir=\(root)/work"]
            ).mount(at: root + "/merged")
            defer { try? Mount.unmountAll(at: root + "/merged") }
            let (supported, message) = OverlaySnapshotter.supported(at: root + "/merged")
            #expect(!supported)
            #expect(message.contains("overlay is not supported on overlay at \(root)/merged"))
            #expect(message.contains("not supported as upperdir"))  // the kernel's own reason
            #expect(message.contains("--storage-driver native"))
            #expect(errorCode { _ = try OverlaySnapshotter(root: root + "/merged/snapshots") } == .unsupported)
            _ = try NativeSnapshotter(root: root + "/merged/native")
        }
    }
}
