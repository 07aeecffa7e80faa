import AtollCore
import CAtollShim
import Foundation
import Glibc
import Testing

@testable import AtollStorage

@Suite struct LayerSafetyTests {
    struct Escape: Sendable, CustomTestStringConvertible {
        var name: String
        var script: String
        var message: String
        var testDescription: String { name }
    }

    /// `CANARY` in a script stands for the absolute path of the canary file outside the root,
    /// `OUTSIDE` for the fixture directory holding it.
    static let escapes: [Escape] = [
        Escape(
            name: "dot-dot", script: "add('../x', data=b'pwned')",
            message: "layer entry \"../x\": path escapes the root"),
        Escape(
            name: "deep dot-dot", script: "add('../../etc/x', data=b'pwned')",
            message: "layer entry \"../../etc/x\": path escapes the root"),
        Escape(
            name: "dot-dot after a component", script: "d('a')\nadd('a/../../canary', data=b'pwned')",
            message: "layer entry \"a/../../canary\": path escapes the root"),
        Escape(
            name: "symlink to the host root as a parent", script: "sym('link', '/')\nadd('link/x', data=b'pwned')",
            message: "layer entry \"link/x\": parent \"link\" is a symbolic link"),
        Escape(
            name: "symlink climbing as a parent", script: "sym('link', '../../..')\nadd('link/x', data=b'pwned')",
            message: "layer entry \"link/x\": parent \"link\" is a symbolic link"),
        Escape(
            name: "symlink to the outside as a deeper parent",
            script: "d('a')\nsym('a/out', 'OUTSIDE')\nadd('a/out/canary', data=b'pwned')",
            message: "layer entry \"a/out/canary\": parent \"a/out\" is a symbolic link"),
        Escape(
            name: "whiteout through a symlink", script: "sym('link', 'OUTSIDE')\nadd('link/.wh.canary')",
            message: "layer entry \"link/.wh.canary\": parent \"link\" is a symbolic link"),
        Escape(
            name: "hardlink climbing out", script: "hard('h', '../../outside')",
            message: "layer entry \"h\": hardlink target \"../../outside\" escapes the root"),
        Escape(
            name: "hardlink to the canary by dot-dot", script: "hard('h', '../canary')",
            message: "layer entry \"h\": hardlink target \"../canary\" escapes the root"),
        Escape(
            name: "hardlink through a symlinked directory",
            script: "sym('dirlink', 'OUTSIDE')\nhard('h', 'dirlink/canary')",
            message: "layer entry \"h\": hardlink target \"dirlink/canary\": parent \"dirlink\" is a symbolic link"),
        Escape(name: "bare whiteout", script: "add('.wh.')", message: "layer entry \".wh.\": whiteout names nothing"),
        Escape(
            name: "whiteout of dot-dot", script: "add('.wh...')",
            message: "layer entry \".wh...\": whiteout names \"..\""),
        Escape(
            name: "whiteout of dot", script: "d('a')\nadd('a/.wh..')",
            message: "layer entry \"a/.wh..\": whiteout names \".\""),
    ]

    @Test(arguments: escapes, [WhiteoutStyle.native, .overlay()])
    func anEscapeFailsWithItsOwnErrorAndLeavesTheOutsideUntouched(_ escape: Escape, _ style: WhiteoutStyle) throws {
        let fixture = try LayerFixture()
        let canary = fixture.path + "/canary"
        try FileSystem.writeFileAtomically(canary, Array("keep".utf8))
        let root = try fixture.directory("root")
        let script = escape.script.replacingOccurrences(of: "OUTSIDE", with: fixture.path)
        let tar = try fixture.tar("evil.tar", script)
        let before = try fixture.topLevelNames()
        let canaryBefore = try #require(lstatOrNil(canary))

        let error = #expect(throws: AtollError.self) { try fixture.apply(tar, to: root, style) }
        #expect(error?.message == escape.message)
        #expect(error?.code == .invalidArgument)

        let canaryAfter = try #require(lstatOrNil(canary))
        #expect(try String(contentsOfFile: canary, encoding: .utf8) == "keep")
        #expect(canaryAfter.st_nlink == 1)
        #expect(canaryAfter.st_mtim.tv_sec == canaryBefore.st_mtim.tv_sec)
        #expect(canaryAfter.st_mtim.tv_nsec == canaryBefore.st_mtim.tv_nsec)
        #expect(try fixture.topLevelNames() == before)
        #expect(lstatOrNil("/etc/x") == nil)
        #expect(lstatOrNil("/x") == nil)
    }

    @Test func anAbsoluteNameIsTakenRelativeToTheRoot() throws {
        let fixture = try LayerFixture()
        let root = try fixture.directory("root")
        let tar = try fixture.tar(
            "abs.tar", "add('/etc/atoll-absolute-test', data=b'inside')\nadd('/../../x2', data=b'x')")
        // "/../../x2" cleans (like filepath.Clean("/" + name)) to... an escape: ".." above the root.
        let error = #expect(throws: AtollError.self) { try fixture.apply(tar, to: root) }
        #expect(error?.message == "layer entry \"/../../x2\": path escapes the root")
        #expect(try String(contentsOfFile: root + "/etc/atoll-absolute-test", encoding: .utf8) == "inside")
        #expect(lstatOrNil("/etc/atoll-absolute-test") == nil)
    }

    /// libarchive reads an unknown type flag (here GNU's volume header 'V') its own way; a tar
    /// cannot hold a socket. This only checks that such an entry does not break the rest.
    @Test func anUnknownEntryTypeDoesNotBreakTheEntriesBeforeIt() throws {
        let fixture = try LayerFixture()
        let root = try fixture.directory("root")
        let tar = try fixture.tar("t.tar", "add('ok')\nadd('weird', kind=b'V')")
        _ = try? fixture.apply(tar, to: root)
        #expect(lstatOrNil(root + "/ok") != nil)
    }

    @Test func aGzipBombStopsAtTheLimitQuickly() throws {
        let fixture = try LayerFixture()
        let bomb = fixture.path + "/bomb.tar.gz"
        // 1 GiB of zeros in one tar entry, gzip-compressed (about 1 MiB).
        try fixture.run(
            "/usr/bin/env",
            [
                "python3", "-c",
                """
                import tarfile, zlib, sys
                ti = tarfile.TarInfo('zeros'); ti.size = 1 << 30
                c = zlib.compressobj(9, zlib.DEFLATED, 31)
                out = open(sys.argv[1], 'wb')
                out.write(c.compress(ti.tobuf(format=tarfile.PAX_FORMAT)))
                chunk = bytes(1 << 20)
                for _ in range(1024): out.write(c.compress(chunk))
                out.write(c.flush())
                """,
                bomb,
            ])
        #expect(try FileSystem.readFile(bomb).count < 4 << 20)
        let root = try fixture.directory("root")
        let start = ContinuousClock.now
        let error = #expect(throws: AtollError.self) {
            try fixture.apply(bomb, to: root, limits: LayerLimits(maxUncompressedBytes: 10 << 20))
        }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message == "layer expands beyond the limit of \(10 << 20) bytes")
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect((lstatOrNil(root + "/zeros")?.st_size ?? 0) <= 11 << 20)
    }

    @Test func tooManyEntriesStopAtTheLimit() throws {
        let fixture = try LayerFixture()
        let root = try fixture.directory("root")
        let tar = try fixture.tar("many.tar", "for i in range(50): add('f%d' % i)")
        let error = #expect(throws: AtollError.self) {
            try fixture.apply(tar, to: root, limits: LayerLimits(maxEntries: 10))
        }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message == "layer has more than the limit of 10 entries")
    }

    @Test func aLongNameIsRejected() throws {
        let fixture = try LayerFixture()
        let root = try fixture.directory("root")
        let tar = try fixture.tar("long.tar", "add('a/' * 40 + 'f')")
        let error = #expect(throws: AtollError.self) {
            try fixture.apply(tar, to: root, limits: LayerLimits(maxPathLength: 64))
        }
        #expect(error?.message.hasSuffix("name is longer than 64 bytes") == true)
    }

    @Test func garbageIsNotATarArchive() throws {
        let fixture = try LayerFixture()
        let root = try fixture.directory("root")
        let junk = fixture.path + "/junk"
        try FileSystem.writeFileAtomically(junk, Array(repeating: 0x41, count: 5000))
        let error = #expect(throws: AtollError.self) { try fixture.apply(junk, to: root) }
        #expect(error?.code == .dataLoss)
    }
}
