import AtollCore
import Foundation
import Glibc
import Testing

@testable import AtollStorage

/// The drivers the conformance suite runs against, as factories over a root directory.
enum SnapshotterDriver: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case overlay, native

    func make(_ root: String) throws -> any Snapshotter {
        switch self {
        case .overlay: try OverlaySnapshotter(root: root)
        case .native: try NativeSnapshotter(root: root)
        }
    }

    var testDescription: String { rawValue }
}

/// The same behaviour, checked for every driver (after containerd's core/snapshots/testsuite).
@Suite struct SnapshotterConformanceTests {
    @Test(arguments: SnapshotterDriver.allCases)
    func aSnapshotGoesThroughPrepareCommitViewAndRemove(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let s = try driver.make(root + "/driver")
            #expect(s.driverName == driver.rawValue)
            _ = try s.prepare("extract-1", parent: nil, labels: ["stage": "extract"])
            #expect(try s.stat("extract-1").kind == .active)
            try s.commit("layer-1", key: "extract-1", labels: ["layer": "1"])
            #expect(errorCode { _ = try s.stat("extract-1") } == .notFound)
            let committed = try s.stat("layer-1")
            #expect(committed.kind == .committed)
            #expect(committed.parent == nil)
            #expect(committed.labels == ["stage": "extract", "layer": "1"])
            #expect(errorCode { _ = try s.mounts("layer-1") } == .failedPrecondition)

            _ = try s.view("view-1", parent: "layer-1", labels: [:])
            let view = try s.stat("view-1")
            #expect(view.kind == .view)
            #expect(view.parent == "layer-1")
            #expect(try s.mounts("view-1").allSatisfy(\.isReadOnly))

            try s.remove("view-1")
            try s.remove("layer-1")
            #expect(try s.list().isEmpty)
            #expect(errorCode { try s.remove("layer-1") } == .notFound)
        }
    }

    @Test(arguments: SnapshotterDriver.allCases)
    func filesWrittenIntoAnActiveSnapshotAppearInAChildAfterCommit(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let s = try driver.make(root + "/driver")
            let target = root + "/mnt"
            let base = try s.prepare("base", parent: nil, labels: [:])
            try withMounted(base, at: target) { () throws in
                try Syscall.mkdir(target + "/etc")
                try writeFile(target + "/etc/hostname", "atoll\n")
            }
            try s.commit("base-c", key: "base", labels: [:])
            let child = try s.prepare("child", parent: "base-c", labels: [:])
            try withMounted(child, at: target) { () throws in
                #expect(try readText(target + "/etc/hostname") == "atoll\n")
                try writeFile(target + "/etc/extra", "more")
                #expect(try readText(target + "/etc/extra") == "more")
            }
            #expect(!Mount.isMountPoint(target))
        }
    }

    @Test(arguments: SnapshotterDriver.allCases)
    func aChildsChangesDoNotTouchItsParent(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let s = try driver.make(root + "/driver")
            let target = root + "/mnt"
            try withMounted(try s.prepare("base", parent: nil, labels: [:]), at: target) { () throws in
                try writeFile(target + "/kept", "original")
                try writeFile(target + "/deleted", "still here")
            }
            try s.commit("base-c", key: "base", labels: [:])
            try withMounted(try s.prepare("child", parent: "base-c", labels: [:]), at: target) { () throws in
                try writeFile(target + "/kept", "changed")
                try Syscall.unlink(target + "/deleted")
                try writeFile(target + "/new", "new")
            }
            try withMounted(try s.view("look", parent: "base-c", labels: [:]), at: target) { () throws in
                #expect(try readText(target + "/kept") == "original")
                #expect(try readText(target + "/deleted") == "still here")
                #expect(!FileSystem.exists(target + "/new"))
                // A view is read-only.
                #expect(throws: SystemCallError.self) {
                    try Syscall.open(target + "/other", flags: O_WRONLY | O_CREAT, mode: 0o644)
                }
            }
            try withMounted(try s.mounts("child"), at: target) { () throws in
                #expect(try readText(target + "/kept") == "changed")
                #expect(!FileSystem.exists(target + "/deleted"))
            }
        }
    }

    @Test(arguments: SnapshotterDriver.allCases)
    func aParentWithChildrenCannotBeRemoved(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let s = try driver.make(root + "/driver")
            _ = try s.prepare("a", parent: nil, labels: [:])
            try s.commit("a-c", key: "a", labels: [:])
            _ = try s.prepare("b", parent: "a-c", labels: [:])
            #expect(errorCode { try s.remove("a-c") } == .failedPrecondition)
            #expect(try s.stat("a-c").kind == .committed)
            try s.remove("b")
            try s.remove("a-c")
            #expect(try s.list().isEmpty)
            #expect(try FileSystem.listDirectory(Syscall.open(root + "/driver/snapshots", flags: O_RDONLY)).isEmpty)
        }
    }

    @Test(arguments: SnapshotterDriver.allCases)
    func duplicateKeysAndBadParentsAreRejected(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let s = try driver.make(root + "/driver")
            _ = try s.prepare("a", parent: nil, labels: [:])
            #expect(errorCode { _ = try s.prepare("a", parent: nil, labels: [:]) } == .alreadyExists)
            #expect(errorCode { _ = try s.view("a", parent: nil, labels: [:]) } == .alreadyExists)
            _ = try s.prepare("b", parent: nil, labels: [:])
            try s.commit("b-c", key: "b", labels: [:])
            #expect(errorCode { try s.commit("b-c", key: "a", labels: [:]) } == .alreadyExists)
            #expect(try s.stat("a").kind == .active)
            #expect(errorCode { _ = try s.prepare("c", parent: "a", labels: [:]) } == .failedPrecondition)
            #expect(errorCode { _ = try s.prepare("c", parent: "missing", labels: [:]) } == .notFound)
            #expect(errorCode { _ = try s.prepare("", parent: nil, labels: [:]) } == .invalidArgument)
            #expect(try s.list().map(\.name) == ["a", "b-c"])
            // Failed prepares leave no directories behind.
            #expect(try s.cleanup() == 0)
        }
    }

    @Test(arguments: SnapshotterDriver.allCases)
    func aViewCannotBeCommitted(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let s = try driver.make(root + "/driver")
            _ = try s.prepare("a", parent: nil, labels: [:])
            try s.commit("a-c", key: "a", labels: [:])
            _ = try s.view("v", parent: "a-c", labels: [:])
            #expect(errorCode { try s.commit("v-c", key: "v", labels: [:]) } == .failedPrecondition)
            #expect(errorCode { try s.commit("again", key: "a-c", labels: [:]) } == .failedPrecondition)
            #expect(try s.stat("v").kind == .view)
        }
    }

    @Test(arguments: SnapshotterDriver.allCases)
    func statAndListReportParentsLabelsAndOrder(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let s = try driver.make(root + "/driver")
            let before = Int64(Date().timeIntervalSince1970)
            _ = try s.prepare("1", parent: nil, labels: ["a": "b"])
            try s.commit("c1", key: "1", labels: [:])
            _ = try s.prepare("2", parent: "c1", labels: [:])
            try s.commit("c2", key: "2", labels: [:])
            _ = try s.prepare("active", parent: "c2", labels: ["container": "x"])
            _ = try s.view("view", parent: "c1", labels: [:])
            let list = try s.list()
            #expect(list.map(\.name) == ["c1", "c2", "active", "view"])
            #expect(list.map(\.parent) == [nil, "c1", "c2", "c1"])
            #expect(list.map(\.kind) == [.committed, .committed, .active, .view])
            let active = try s.stat("active")
            #expect(active.labels == ["container": "x"])
            #expect(active.created >= before && active.updated >= active.created)
            #expect(try s.stat("c1").labels == ["a": "b"])
        }
    }

    @Test(arguments: SnapshotterDriver.allCases)
    func usageGrowsWithTheDataWritten(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let s = try driver.make(root + "/driver")
            let target = root + "/mnt"
            let mounts = try s.prepare("a", parent: nil, labels: [:])
            let empty = try s.usage("a")
            try withMounted(mounts, at: target) { () throws in
                let fd = try Syscall.open(target + "/big", flags: O_WRONLY | O_CREAT, mode: 0o644)
                try fd.writeAll([UInt8](repeating: 1, count: 2 << 20))
                try fd.fsync()
            }
            let full = try s.usage("a")
            #expect(full.size >= empty.size + (2 << 20))
            #expect(full.inodes == empty.inodes + 1)
        }
    }

    @Test(arguments: SnapshotterDriver.allCases)
    func cleanupRemovesDirectoriesWithoutMetadata(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let s = try driver.make(root + "/driver")
            _ = try s.prepare("kept", parent: nil, labels: [:])
            try Syscall.mkdirAll(root + "/driver/snapshots/9999/fs/usr")
            try writeFile(root + "/driver/snapshots/9999/fs/usr/file", "orphan")
            try Syscall.mkdirAll(root + "/driver/snapshots/junk")
            #expect(try s.cleanup() == 2)
            #expect(!FileSystem.exists(root + "/driver/snapshots/9999"))
            #expect(!FileSystem.exists(root + "/driver/snapshots/junk"))
            #expect(try s.stat("kept").kind == .active)
            #expect(try s.usage("kept").inodes == 0)
            #expect(try s.cleanup() == 0)
        }
    }

    @Test(arguments: SnapshotterDriver.allCases)
    func metadataAndDataSurviveReopeningTheSnapshotter(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let target = root + "/mnt"
            do {
                let s = try driver.make(root + "/driver")
                try withMounted(try s.prepare("a", parent: nil, labels: ["k": "v"]), at: target) { () throws in
                    try writeFile(target + "/file", "persisted")
                }
                try s.commit("a-c", key: "a", labels: [:])
                _ = try s.prepare("b", parent: "a-c", labels: [:])
            }
            let s = try driver.make(root + "/driver")
            #expect(try s.list().map(\.name) == ["a-c", "b"])
            #expect(try s.stat("b").parent == "a-c")
            #expect(try s.stat("a-c").labels == ["k": "v"])
            try withMounted(try s.mounts("b"), at: target) { () throws in
                #expect(try readText(target + "/file") == "persisted")
            }
            // New ids do not collide with the old ones.
            _ = try s.prepare("c", parent: "a-c", labels: [:])
            #expect(try s.cleanup() == 0)
        }
    }

    @Test(arguments: SnapshotterDriver.allCases)
    func aChainOf130LayersIsVisibleThroughOneMount(_ driver: SnapshotterDriver) throws {
        try withTemporaryDirectory { root in
            let s = try driver.make(root + "/driver")
            let target = root + "/mnt"
            let layers = 130
            var parent: String?
            for layer in 0..<layers {
                let mounts = try s.prepare("extract-\(layer)", parent: parent, labels: [:])
                try withMounted(mounts, at: target) { () throws in
                    try writeFile(target + "/layer-\(layer)", "\(layer)")
                }
                try s.commit("layer-\(layer)", key: "extract-\(layer)", labels: [:])
                parent = "layer-\(layer)"
            }
            let top = try s.prepare("container", parent: parent, labels: [:])
            if driver == .overlay {
                let data = top[0].classicFlagsAndData().1
                #expect(top[0].type == "overlay")
                #expect(data.utf8.count > Mount.classicDataLimit)  // too long for mount(2)
            }
            try withMounted(top, at: target) { () throws in
                let names = try FileSystem.listDirectory(Syscall.open(target, flags: O_RDONLY | O_DIRECTORY)).map(
                    \.name)
                #expect(Set(names) == Set((0..<layers).map { "layer-\($0)" }))
                #expect(try readText(target + "/layer-0") == "0")
                #expect(try readText(target + "/layer-129") == "129")
                try writeFile(target + "/container-file", "rw")
            }
            let view = try s.view("all", parent: parent, labels: [:])
            try withMounted(view, at: target) { () throws in
                #expect(try readText(target + "/layer-64") == "64")
                #expect(!FileSystem.exists(target + "/container-file"))
            }
        }
    }
}
