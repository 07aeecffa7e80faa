import AtollCore
import AtollOCI
import CAtollShim
import Foundation
import Glibc
import Testing

@testable import AtollStorage

@Suite struct LayerCompressionTests {
    @Test func magicBytesSelectTheCompression() {
        #expect(LayerCompression.detect([0x1f, 0x8b, 0x08]) == .gzip)
        #expect(LayerCompression.detect([0x28, 0xb5, 0x2f, 0xfd, 0x00]) == .zstd)
        #expect(LayerCompression.detect([0x28, 0xb5, 0x2f]) == .none)
        #expect(LayerCompression.detect(Array("etc/passwd".utf8)) == .none)
        #expect(LayerCompression.detect([]) == .none)
    }

    @Test(arguments: [LayerCompression.gzip, .zstd])
    func encodedDataDecodesToTheSameBytes(_ compression: LayerCompression) throws {
        var input = [UInt8](repeating: 0, count: 3 << 20)
        for i in input.indices { input[i] = UInt8(truncatingIfNeeded: (i * 7919) >> 3) }
        var encoded: [UInt8] = []
        let encoder = try CompressionEncoder(compression)
        try input.withUnsafeBytes { bytes in
            try encoder.encode(UnsafeRawBufferPointer(rebasing: bytes[0..<1000]), finish: false) { encoded += $0 }
            try encoder.encode(UnsafeRawBufferPointer(rebasing: bytes[1000...]), finish: true) { encoded += $0 }
        }
        #expect(LayerCompression.detect(encoded) == compression)
        #expect(encoded.count < input.count)
        // Decode in odd-sized pieces into a small output buffer.
        let decoder = try CompressionDecoder(compression)
        var output: [UInt8] = []
        var scratch = [UInt8](repeating: 0, count: 4099)
        var offset = 0
        while true {
            let piece = min(777, encoded.count - offset)
            let (consumed, produced) = try encoded.withUnsafeBytes { source in
                try scratch.withUnsafeMutableBytes { target in
                    try decoder.decode(UnsafeRawBufferPointer(rebasing: source[offset..<offset + piece]), into: target)
                }
            }
            output += scratch[0..<produced]
            offset += consumed
            if consumed == 0 && produced == 0 { break }
        }
        #expect(output == input)
        #expect(decoder.isAtEnd)
    }

    @Test func aTruncatedGzipLayerIsReportedAsTruncated() throws {
        let fixture = try LayerFixture()
        let tar = try fixture.tar("t.tar", "add('f', data=bytes(range(256)) * 4000)")
        let gz = try fixture.compress(tar, .gzip)
        let bytes = try FileSystem.readFile(gz)
        try FileSystem.writeFileAtomically(gz, Array(bytes[0..<bytes.count / 2]))
        let root = try fixture.directory("root")
        let error = #expect(throws: AtollError.self) { try fixture.apply(gz, to: root) }
        #expect(error?.code == .dataLoss)
        #expect(error?.message.contains("truncated") == true)
    }
}

@Suite struct LayerApplyTests {
    static let sample = """
        d('etc')
        add('etc/hosts', data=b'127.0.0.1 localhost\\n')
        d('usr/bin', mode=0o755)
        add('usr/bin/tool', data=b'x' * 100000, mode=0o755)
        sym('usr/bin/link', 'tool')
        """

    @Test(arguments: [LayerCompression.none, .gzip, .zstd])
    func theDiffIDIsTheDigestOfTheUncompressedTarWhateverTheCompression(_ compression: LayerCompression) throws {
        let fixture = try LayerFixture()
        let tar = try fixture.tar("layer.tar", Self.sample)
        let blob = try fixture.compress(tar, compression)
        let root = try fixture.directory("root")
        let applied = try fixture.apply(blob, to: root)
        let tarBytes = try FileSystem.readFile(tar)
        // python pads the tar to a 10 KiB record: the padding is part of the diffID.
        #expect(tarBytes.count % 10240 == 0)
        #expect(applied.diffID == Digest.sha256(of: tarBytes))
        #expect(applied.uncompressedSize == Int64(tarBytes.count))
        #expect(applied.compressedDigest == (try fileDigest(blob)))
        #expect(applied.compressedSize == Int64(try FileSystem.readFile(blob).count))
        #expect(try String(contentsOfFile: root + "/etc/hosts", encoding: .utf8) == "127.0.0.1 localhost\n")
        #expect(try Syscall.readlink(root + "/usr/bin/link") == "tool")
    }

    @Test func metadataOfEveryEntryTypeIsKept() throws {
        let fixture = try LayerFixture()
        let tar = try fixture.tar(
            "meta.tar",
            """
            d('dir', mode=0o1777, uid=12, gid=34, pax={'mtime': '1600000000.123456789'})
            add('dir/suid', data=b'#!/bin/sh\\n', mode=0o4755, uid=1000, gid=1001, pax={'mtime': '1650000000.987654321', 'atime': '1650000001.5', 'SCHILY.xattr.user.color': 'blue'})
            add('dir/sgid', data=b'', mode=0o2710, uid=5, gid=6)
            sym('dir/sym', '../../../../absolutely/not/resolved', uid=7, gid=8)
            hard('dir/hard', 'dir/suid')
            add('dev/null0', tarfile.CHRTYPE, mode=0o666, major=1, minor=3)
            add('dev/blk', tarfile.BLKTYPE, mode=0o660, major=7, minor=0, gid=6)
            add('dev/fifo', tarfile.FIFOTYPE, mode=0o620)
            """)
        let root = try fixture.directory("root")
        try fixture.apply(tar, to: root)

        let dir = try #require(lstatOrNil(root + "/dir"))
        #expect(dir.st_mode == S_IFDIR | 0o1777)
        #expect(dir.st_uid == 12 && dir.st_gid == 34)
        #expect(dir.st_mtim.tv_sec == 1_600_000_000 && dir.st_mtim.tv_nsec == 123_456_789)

        let suid = try #require(lstatOrNil(root + "/dir/suid"))
        #expect(suid.st_mode == S_IFREG | 0o4755)
        #expect(suid.st_uid == 1000 && suid.st_gid == 1001)
        #expect(suid.st_mtim.tv_sec == 1_650_000_000 && suid.st_mtim.tv_nsec == 987_654_321)
        #expect(suid.st_atim.tv_sec == 1_650_000_001 && suid.st_atim.tv_nsec == 500_000_000)
        #expect(xattrValue(root + "/dir/suid", "user.color") == "blue")
        #expect(suid.st_nlink == 2)

        let hard = try #require(lstatOrNil(root + "/dir/hard"))
        #expect(hard.st_ino == suid.st_ino)
        #expect(lstatOrNil(root + "/dir/sgid")?.st_mode == S_IFREG | 0o2710)

        let sym = try #require(lstatOrNil(root + "/dir/sym"))
        #expect(sym.st_mode & S_IFMT == S_IFLNK)
        #expect(sym.st_uid == 7 && sym.st_gid == 8)
        #expect(try Syscall.readlink(root + "/dir/sym") == "../../../../absolutely/not/resolved")

        let null0 = try #require(lstatOrNil(root + "/dev/null0"))
        #expect(null0.st_mode == S_IFCHR | 0o666)
        #expect(atoll_major(null0.st_rdev) == 1 && atoll_minor(null0.st_rdev) == 3)
        let blk = try #require(lstatOrNil(root + "/dev/blk"))
        #expect(blk.st_mode == S_IFBLK | 0o660 && blk.st_gid == 6)
        #expect(atoll_major(blk.st_rdev) == 7)
        #expect(lstatOrNil(root + "/dev/fifo")?.st_mode == S_IFIFO | 0o620)
    }

    @Test func aSparseFileKeepsItsHolesAndSize() throws {
        let fixture = try LayerFixture()
        let source = try fixture.directory("src")
        try fixture.run(
            "/bin/sh",
            [
                "-c",
                "cd '\(source)' && truncate -s 64M sparse && printf end >> sparse && tar --sparse --format=pax -cf ../sparse.tar sparse",
            ])
        let root = try fixture.directory("root")
        try fixture.apply(fixture.path + "/sparse.tar", to: root)
        let st = try #require(lstatOrNil(root + "/sparse"))
        #expect(st.st_size == (64 << 20) + 3)
        #expect(Int(st.st_blocks) * 512 < 1 << 20)
        #expect(try fileDigest(root + "/sparse") == fileDigest(source + "/sparse"))
    }

    @Test func aFileReplacesASymlinkInsteadOfWritingThroughIt() throws {
        let fixture = try LayerFixture()
        let canary = fixture.path + "/canary"
        try FileSystem.writeFileAtomically(canary, Array("keep".utf8))
        let root = try fixture.directory("root")
        #expect(symlink(canary, root + "/f") == 0)
        #expect(symlink("../canary", root + "/g") == 0)
        let tar = try fixture.tar("t.tar", "add('f', data=b'new')\nadd('g', data=b'new', mode=0o600)")
        try fixture.apply(tar, to: root)
        #expect(try String(contentsOfFile: canary, encoding: .utf8) == "keep")
        #expect(lstatOrNil(root + "/f")?.st_mode == S_IFREG | 0o644)
        #expect(lstatOrNil(root + "/g")?.st_mode == S_IFREG | 0o600)
        #expect(try String(contentsOfFile: root + "/f", encoding: .utf8) == "new")
    }

    @Test func aRedeclaredDirectoryKeepsItsContentsAndTakesTheNewMetadata() throws {
        let fixture = try LayerFixture()
        let root = try fixture.directory("root")
        try fixture.apply(try fixture.tar("1.tar", "d('d')\nadd('d/old', data=b'1')"), to: root)
        try fixture.apply(try fixture.tar("2.tar", "d('d', mode=0o700, uid=9)\nadd('d/new', data=b'2')"), to: root)
        #expect(lstatOrNil(root + "/d/old") != nil)
        #expect(lstatOrNil(root + "/d/new") != nil)
        #expect(lstatOrNil(root + "/d")?.st_mode == S_IFDIR | 0o700)
        #expect(lstatOrNil(root + "/d")?.st_uid == 9)
    }

    @Test func nativeWhiteoutsDeleteAndOpaqueMarkersKeepOnlyThisLayersEntries() throws {
        let fixture = try LayerFixture()
        let root = try fixture.directory("root")
        try fixture.apply(
            try fixture.tar(
                "1.tar",
                """
                add('a', data=b'a')
                d('gone'); add('gone/x', data=b'x'); d('gone/sub'); add('gone/sub/y')
                d('o'); add('o/old1'); d('o/olddir'); add('o/olddir/f'); d('o/keep'); add('o/keep/lowerfile')
                """), to: root)
        try fixture.apply(
            try fixture.tar(
                "2.tar",
                """
                add('.wh.a')
                add('.wh.gone')
                add('.wh.never-existed')
                d('o')
                d('o/keep')
                add('o/keep/new', data=b'n')
                add('o/.wh..wh..opq')
                add('o/after', data=b'after')
                """), to: root)
        #expect(lstatOrNil(root + "/a") == nil)
        #expect(lstatOrNil(root + "/gone") == nil)
        #expect(lstatOrNil(root + "/.wh.a") == nil)
        let names = Set(try FileManager.default.subpathsOfDirectory(atPath: root + "/o"))
        #expect(names == ["keep", "keep/new", "after"])
    }

    @Test func overlayWhiteoutsHideLowerEntriesInARealOverlayMount() throws {
        let fixture = try LayerFixture()
        let lower = try fixture.directory("lower")
        let upper = try fixture.directory("upper")
        let work = try fixture.directory("work")
        let merged = try fixture.directory("merged")
        try fixture.apply(
            try fixture.tar(
                "1.tar",
                """
                add('a', data=b'a'); add('b', data=b'b')
                d('gone'); add('gone/x')
                d('o'); add('o/old'); d('o/olddir'); add('o/olddir/f')
                d('p'); add('p/lowerfile')
                """), to: lower)
        try fixture.apply(
            try fixture.tar(
                "2.tar",
                """
                add('.wh.a')
                add('.wh.gone')
                d('o'); add('o/.wh..wh..opq'); add('o/new', data=b'new')
                add('p/added')
                hard('p/hl', 'b')
                """), to: upper, .overlay(lowerDirectories: [lower]))
        // On disk: a 0/0 character device and the opaque xattr.
        let whiteout = try #require(lstatOrNil(upper + "/a"))
        #expect(whiteout.st_mode & S_IFMT == S_IFCHR && whiteout.st_rdev == 0)
        #expect(xattrValue(upper + "/o", "trusted.overlay.opaque") == "y")
        #expect(lstatOrNil(upper + "/.wh.a") == nil)
        // The parent "p", absent from the layer, was created; the hardlink target copied up.
        #expect(lstatOrNil(upper + "/p/hl")?.st_ino == lstatOrNil(upper + "/b")?.st_ino)

        try fixture.mountOverlay(lower: [lower], upper: upper, work: work, at: merged)
        #expect(lstatOrNil(merged + "/a") == nil)
        #expect(lstatOrNil(merged + "/gone") == nil)
        #expect(lstatOrNil(merged + "/b") != nil)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: merged + "/o")) == ["new"])
        #expect(
            Set(try FileManager.default.contentsOfDirectory(atPath: merged + "/p")) == ["lowerfile", "added", "hl"])
        try fixture.unmount(merged)
    }

    @Test func applyingToMountsChoosesTheStyleFromTheMountType() throws {
        let fixture = try LayerFixture()
        let upper = try fixture.directory("upper")
        let native = try fixture.directory("native")
        let lower = try fixture.directory("lower")
        let tar = try fixture.tar("t.tar", "add('.wh.x')\nadd('y')")
        try Layer.apply(
            from: fixture.open(tar),
            to: [
                Mount(
                    type: "overlay", source: "overlay",
                    options: ["lowerdir=\(lower)", "upperdir=\(upper)", "workdir=/nonexistent"])
            ])
        #expect(lstatOrNil(upper + "/x")?.st_mode == S_IFCHR)
        try Layer.apply(from: fixture.open(tar), to: [Mount(type: "bind", source: native, options: ["rbind", "rw"])])
        #expect(lstatOrNil(native + "/x") == nil)
        #expect(lstatOrNil(native + "/y") != nil)
        let error = #expect(throws: AtollError.self) {
            try Layer.apply(
                from: fixture.open(tar), to: [Mount(type: "bind", source: native, options: ["rbind", "ro"])])
        }
        #expect(error?.code == .failedPrecondition)
    }
}
