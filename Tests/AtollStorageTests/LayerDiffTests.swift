import AtollCore
import AtollOCI
import CAtollShim
import Foundation
import Glibc
import Testing

@testable import AtollStorage

@Suite struct LayerDiffTests {
    static let base = """
        d('etc'); add('etc/hosts', data=b'hosts'); add('etc/keep', data=b'same', pax={'mtime': '1700000000.5'})
        add('etc/sametime', data=b'aaaa')
        d('gone'); add('gone/x'); d('gone/sub'); add('gone/sub/y')
        d('opaque'); add('opaque/old'); d('opaque/olddir'); add('opaque/olddir/f')
        d('bin'); add('bin/tool', data=b'tool' * 1000, mode=0o755); hard('bin/tool2', 'bin/tool')
        sym('bin/sh', 'tool')
        d('dev'); add('dev/null', tarfile.CHRTYPE, mode=0o666, major=1, minor=3)
        """

    /// Changes a tree through whatever view `root` is (a native copy or an overlay mount).
    static func change(_ root: String) throws {
        try FileSystem.writeFileAtomically(root + "/etc/hosts", Array("changed".utf8), mode: 0o600)
        // Same size and mtime (whole seconds) but other bytes: only a content comparison sees it.
        let fd = try Syscall.open(root + "/etc/sametime", flags: O_WRONLY)
        try fd.writeAll(Array("bbbb".utf8))
        var stamps = [timespec(tv_sec: 1_700_000_000, tv_nsec: 0), timespec(tv_sec: 1_700_000_000, tv_nsec: 0)]
        #expect(futimens(fd.rawValue, &stamps) == 0)
        fd.close()
        try FileSystem.removeTree(root + "/gone")
        try FileSystem.removeTree(root + "/opaque")
        try Syscall.mkdir(root + "/opaque", mode: 0o750)
        try FileSystem.writeFileAtomically(root + "/opaque/new", Array("new".utf8))
        try Syscall.mkdirAll(root + "/new/deep")
        try FileSystem.writeFileAtomically(root + "/new/deep/file", Array("deep".utf8))
        #expect(link(root + "/new/deep/file", root + "/new/link") == 0)
        #expect(atoll_lsetxattr(root + "/new/deep/file", "user.k", "v", 1) == 0)
        #expect(chown(root + "/bin/tool", 42, 43) == 0)
        #expect(unlink(root + "/bin/sh") == 0)
        #expect(symlink("/bin/busybox", root + "/bin/sh") == 0)
        #expect(mkfifo(root + "/new/fifo", 0o600) == 0)
    }

    @Test(arguments: [LayerCompression.none, .gzip, .zstd])
    func aNativeDiffAppliedToTheLowerTreeReproducesTheUpperTree(_ compression: LayerCompression) throws {
        let fixture = try LayerFixture()
        let baseTar = try fixture.tar("base.tar", Self.base)
        let lower = try fixture.directory("lower")
        let upper = try fixture.directory("upper")
        try fixture.apply(baseTar, to: lower)
        try fixture.apply(baseTar, to: upper)
        try Self.change(upper)

        let output = fixture.path + "/diff.blob"
        let written = try Layer.diff(
            lower: [Mount(type: "bind", source: lower, options: ["rbind", "ro"])],
            upper: [Mount(type: "bind", source: upper, options: ["rbind", "rw"])],
            to: Syscall.open(output, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600), compression: compression)
        #expect(written.compressedDigest == (try fileDigest(output)))
        #expect(LayerCompression.detect(try FileSystem.readFile(output)) == compression)

        let target = try fixture.directory("target")
        try fixture.apply(baseTar, to: target)
        let applied = try fixture.apply(output, to: target)
        #expect(applied == written)
        #expect(try treeListing(target) == treeListing(upper))

        // Only what changed went into the layer (plus parents), and deletions as whiteouts.
        let names = try tarNames(fixture, output)
        #expect(names.contains("etc/sametime"))
        #expect(names.contains(".wh.gone"))
        #expect(names.contains("opaque/.wh.old") && names.contains("opaque/.wh.olddir"))
        #expect(names.contains("new/link"))
        #expect(!names.contains("etc/keep"))
        // chown of bin/tool changed its hardlinked twin too: it is written as a hardlink.
        #expect(names.contains("bin/tool2"))
    }

    @Test func anOverlayDiffAppliedInBothStylesReproducesTheMergedView() throws {
        let fixture = try LayerFixture()
        let baseTar = try fixture.tar("base.tar", Self.base)
        let lower = try fixture.directory("lower")
        let upper = try fixture.directory("upper")
        let work = try fixture.directory("work")
        let merged = try fixture.directory("merged")
        try fixture.apply(baseTar, to: lower)
        try fixture.mountOverlay(lower: [lower], upper: upper, work: work, at: merged)
        try Self.change(merged)
        let expected = try treeListing(merged)
        try fixture.unmount(merged)
        // The kernel marked the re-created directory opaque.
        #expect(xattrValue(upper + "/opaque", "trusted.overlay.opaque") == "y")

        let output = fixture.path + "/diff.tar"
        let written = try Layer.diff(
            lower: [],
            upper: [
                Mount(
                    type: "overlay", source: "overlay",
                    options: ["lowerdir=\(lower)", "upperdir=\(upper)", "workdir=\(work)"])
            ],
            to: Syscall.open(output, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600), compression: .none)
        #expect(written.diffID == (try fileDigest(output)))
        #expect(written.diffID == written.compressedDigest)
        // libarchive names pax headers without the writer's pid, so the bytes are reproducible.
        let raw = String(decoding: try FileSystem.readFile(output), as: UTF8.self)
        #expect(!raw.contains("PaxHeaders.\(getpid())"))
        #expect(raw.contains("SCHILY.xattr.user.k"))
        #expect(!raw.contains("LIBARCHIVE.xattr"))
        let names = try tarNames(fixture, output)
        #expect(names.contains(".wh.gone"))
        #expect(names.contains("opaque/.wh..wh..opq"))

        // Native: onto a copy of the lower tree.
        let native = try fixture.directory("native")
        try fixture.apply(baseTar, to: native)
        #expect(try fixture.apply(output, to: native).diffID == written.diffID)
        let nativeListing = try treeListing(native)
        #expect(nativeListing == expected)
        for key in Set(nativeListing.keys).union(expected.keys) where nativeListing[key] != expected[key] {
            Issue.record("\(key): native \(nativeListing[key] ?? "-") merged \(expected[key] ?? "-")")
        }

        // Overlay: into a fresh upper, then mounted.
        let upper2 = try fixture.directory("upper2")
        let work2 = try fixture.directory("work2")
        try fixture.apply(output, to: upper2, .overlay(lowerDirectories: [lower]))
        try fixture.mountOverlay(lower: [lower], upper: upper2, work: work2, at: merged)
        #expect(try treeListing(merged) == expected)
        try fixture.unmount(merged)
    }

    @Test func aDiffOfIdenticalTreesIsAnEmptyTar() throws {
        let fixture = try LayerFixture()
        let baseTar = try fixture.tar("base.tar", Self.base)
        let lower = try fixture.directory("lower")
        let upper = try fixture.directory("upper")
        try fixture.apply(baseTar, to: lower)
        try fixture.apply(baseTar, to: upper)
        let output = fixture.path + "/diff.tar"
        let written = try Layer.diff(
            lowerDirectory: lower, upperDirectory: upper,
            to: Syscall.open(output, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600), compression: .none)
        #expect(try tarNames(fixture, output) == [])
        #expect(written.uncompressedSize == 1024)
    }

    @Test func aDiffFromNothingHoldsTheWholeTreeAndIsDeterministic() throws {
        let fixture = try LayerFixture()
        let baseTar = try fixture.tar("base.tar", Self.base)
        let upper = try fixture.directory("upper")
        try fixture.apply(baseTar, to: upper)
        var results: [AppliedLayer] = []
        for name in ["a.tar.zst", "b.tar.zst"] {
            results.append(
                try Layer.diff(
                    lower: [], upper: [Mount(type: "bind", source: upper, options: ["rbind", "rw"])],
                    to: Syscall.open(fixture.path + "/" + name, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600),
                    compression: .zstd))
        }
        #expect(results[0] == results[1])
        let target = try fixture.directory("target")
        try fixture.apply(fixture.path + "/a.tar.zst", to: target)
        #expect(try treeListing(target) == treeListing(upper))
        let names = try tarNames(fixture, fixture.path + "/a.tar.zst")
        #expect(
            names
                == names.sorted {
                    $0.split(separator: "/").lexicographicallyPrecedes($1.split(separator: "/")) {
                        $0.utf8.lexicographicallyPrecedes($1.utf8)
                    }
                })
    }

    /// Entry names of a (possibly compressed) tar, read by python.
    func tarNames(_ fixture: LayerFixture, _ file: String) throws -> [String] {
        let plain = fixture.path + "/names-\(UInt32.random(in: 0...UInt32.max)).tar"
        try fixture.run(
            "/bin/sh",
            [
                "-c",
                "zstd -dcq '\(file)' 2>/dev/null > '\(plain)' || gzip -dc '\(file)' 2>/dev/null > '\(plain)' || cp '\(file)' '\(plain)'",
            ])
        let result = try Subprocess.run(
            "/usr/bin/env",
            [
                "python3", "-c", "import tarfile,sys\nfor m in tarfile.open(sys.argv[1]).getmembers(): print(m.name)",
                plain,
            ])
        #expect(result.succeeded, "\(result.stderr)")
        return result.stdout.split(separator: "\n").map(String.init)
    }
}
