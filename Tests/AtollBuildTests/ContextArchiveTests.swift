import AtollCore
import AtollStorage
import Foundation
import Glibc
import Testing

@testable import AtollBuild

/// A build context under /tmp for one test, removed when the fixture goes away.
private final class ContextFixture {
    let path: String
    var context: String { path + "/context" }
    var tarPath: String { path + "/context.tar" }

    init() throws {
        var template = Array("/tmp/atoll-context-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw AtollError.internalError("mkdtemp failed") }
        path = String(cString: made)
        try Syscall.mkdir(context)
    }

    deinit { try? FileSystem.removeTree(path) }

    func file(_ name: String, _ text: String = "", mode: mode_t = 0o644) throws {
        try bytes(name, Array(text.utf8), mode: mode)
    }

    func bytes(_ name: String, _ content: [UInt8], mode: mode_t = 0o644) throws {
        let full = context + "/" + name
        try Syscall.mkdirAll((full as NSString).deletingLastPathComponent)
        try FileSystem.writeFile(full, content, mode: mode)
        try Syscall.retrying("chmod", full) { chmod(full, mode) }
    }

    func directory(_ name: String, mode: mode_t = 0o755) throws {
        let full = context + "/" + name
        try Syscall.mkdirAll(full)
        try Syscall.retrying("chmod", full) { chmod(full, mode) }
    }

    func symlink(_ name: String, to target: String) throws {
        let full = context + "/" + name
        try Syscall.retrying("symlink", full) { Glibc.symlink(target, full) }
    }

    /// Writes the context's tar with the given patterns; returns what `write` returned.
    @discardableResult
    func archive(_ patterns: [String] = []) throws -> (entries: Int, bytes: Int64) {
        let output = try Syscall.open(tarPath, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        return try ContextArchive.write(
            contextDirectory: context, ignore: try DockerIgnore(patterns: patterns), to: output)
    }

    /// The tar's entries, in order.
    func entries() throws -> [TarEntry] { try TarEntry.read(FileSystem.readFile(tarPath, limit: 1 << 30)) }
}

/// One entry of a tar, read by a small ustar/PAX reader independent of libarchive.
private struct TarEntry: Equatable {
    var name: String
    var type: Character
    var mode: Int
    var uid: Int
    var gid: Int
    var mtime: Int
    var link: String
    var content: [UInt8]

    static func read(_ tar: [UInt8]) throws -> [TarEntry] {
        var entries: [TarEntry] = []
        var offset = 0
        var pax: [String: String] = [:]
        while offset + 512 <= tar.count {
            let header = Array(tar[offset..<(offset + 512)])
            if header.allSatisfy({ $0 == 0 }) { break }
            func field(_ start: Int, _ length: Int) -> String {
                String(decoding: header[start..<(start + length)].prefix { $0 != 0 }, as: UTF8.self)
            }
            func number(_ start: Int, _ length: Int) -> Int {
                Int(field(start, length).trimmingCharacters(in: .whitespaces), radix: 8) ?? -1
            }
            let size = number(124, 12)
            let type = Character(UnicodeScalar(header[156]))
            let content = Array(tar[(offset + 512)..<(offset + 512 + size)])
            offset += 512 + (size + 511) / 512 * 512
            if type == "x" {
                // "length key=value\n" records.
                for record in String(decoding: content, as: UTF8.self).split(separator: "\n") {
                    guard let space = record.firstIndex(of: " "), let equals = record.firstIndex(of: "=") else {
                        continue
                    }
                    let key = String(record[record.index(after: space)..<equals])
                    pax[key] = String(record[record.index(after: equals)...])
                }
                continue
            }
            var name = field(0, 100)
            let prefix = field(345, 155)
            if !prefix.isEmpty { name = prefix + "/" + name }
            name = pax["path"] ?? name
            if name.hasSuffix("/") { name.removeLast() }
            entries.append(
                TarEntry(
                    name: name, type: type, mode: number(100, 8), uid: number(108, 8), gid: number(116, 8),
                    mtime: number(136, 12), link: pax["linkpath"] ?? field(157, 100), content: content))
            pax = [:]
        }
        return entries
    }
}

/// What a tree holds, for comparing two trees: type, mode, owner, mtime (seconds), link target
/// and content of every entry below `root`, by relative path.
private func snapshot(_ root: String) throws -> [String: String] {
    var result: [String: String] = [:]
    func walk(_ relative: String) throws {
        let directory = relative.isEmpty ? root : root + "/" + relative
        let fd = try Syscall.open(directory, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        for (name, _) in try FileSystem.listDirectory(fd) {
            let path = relative.isEmpty ? name : relative + "/" + name
            let full = root + "/" + path
            let st = try Syscall.stat(full, followSymlinks: false)
            var description =
                "mode=\(String(st.st_mode, radix: 8)) uid=\(st.st_uid) gid=\(st.st_gid) mtime=\(st.st_mtim.tv_sec)"
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try walk(path)
            case S_IFLNK:
                description += " link=\(try Syscall.readlink(full))"
            case S_IFREG:
                let content = try FileSystem.readFile(full, limit: 1 << 30)
                description += " size=\(content.count) sum=\(content.reduce(0) { ($0 &* 31) &+ Int($1) })"
            default:
                description += " special"
            }
            result[path] = description
        }
    }
    try walk("")
    return result
}

struct ContextArchiveTests {
    @Test func filesAndNestedDirectoriesAreWrittenDirectoriesFirstAndSortedByName() throws {
        let fixture = try ContextFixture()
        try fixture.file("b.txt", "bee")
        try fixture.file("a/z.txt", "zed")
        try fixture.file("a/sub/x", "ex")
        try fixture.file("Dockerfile", "FROM scratch\n")
        try fixture.directory("empty")

        let result = try fixture.archive()
        let entries = try fixture.entries()

        #expect(entries.map(\.name) == ["Dockerfile", "a", "a/sub", "a/sub/x", "a/z.txt", "b.txt", "empty"])
        #expect(entries.map(\.type) == ["0", "5", "5", "0", "0", "0", "5"])
        #expect(entries.first { $0.name == "a/z.txt" }?.content == Array("zed".utf8))
        #expect(result.entries == 7)
        #expect(result.bytes == Int64("bee".count + "zed".count + "ex".count + "FROM scratch\n".count))
    }

    @Test func ignoredEntriesAreLeftOutButAnExceptionInsideAnIgnoredDirectoryIsKept() throws {
        let fixture = try ContextFixture()
        try fixture.file(".dockerignore", "node_modules\nlogs\n!logs/keep.log\n*.tmp\n")
        try fixture.file("node_modules/dep/index.js", "x")
        try fixture.file("logs/keep.log", "keep")
        try fixture.file("logs/other.log", "other")
        try fixture.directory("logs", mode: 0o700)
        try fixture.file("scratch.tmp", "tmp")
        try fixture.file("src/main.swift", "print(1)")
        try fixture.file("src/cache.tmp", "tmp")

        let ignore = try DockerIgnore.load(contextDirectory: fixture.context)
        let output = try Syscall.open(fixture.tarPath, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        let result = try ContextArchive.write(contextDirectory: fixture.context, ignore: ignore, to: output)
        let entries = try fixture.entries()

        // "*.tmp" is anchored at the context's top, as in Docker: "src/cache.tmp" stays.
        #expect(
            entries.map(\.name) == [
                ".dockerignore", "logs", "logs/keep.log", "src", "src/cache.tmp", "src/main.swift",
            ])
        #expect(entries.first { $0.name == "logs" }?.mode == 0o700)
        #expect(result.entries == 6)
    }

    @Test func anExcludedDirectoryWithNothingIncludedBelowItIsNotWritten() throws {
        let fixture = try ContextFixture()
        try fixture.file("docs/a.md", "a")
        try fixture.file("docs/b/c.md", "c")
        try fixture.file("README.md", "readme")

        try fixture.archive(["docs", "!docs/**/*.txt"])

        #expect(try fixture.entries().map(\.name) == ["README.md"])
    }

    @Test func aSymlinkIsStoredAsALinkAndNeverFollowed() throws {
        let fixture = try ContextFixture()
        try FileSystem.writeFile(fixture.path + "/outside-secret", Array("secret".utf8))
        try Syscall.mkdir(fixture.path + "/elsewhere")
        try FileSystem.writeFile(fixture.path + "/elsewhere/file", Array("not in the context".utf8))
        try fixture.symlink("escape", to: "../outside-secret")
        try fixture.symlink("absolute", to: fixture.path + "/elsewhere")
        try fixture.symlink("dangling", to: "nowhere")

        let result = try fixture.archive()
        let entries = try fixture.entries()

        #expect(entries.map(\.name) == ["absolute", "dangling", "escape"])
        #expect(entries.allSatisfy { $0.type == "2" && $0.content.isEmpty })
        #expect(entries.map(\.link) == [fixture.path + "/elsewhere", "nowhere", "../outside-secret"])
        #expect(result.bytes == 0)
    }

    @Test func socketsAndFifosAreSkippedWithoutBlocking() throws {
        let fixture = try ContextFixture()
        try fixture.file("regular", "r")
        let fifo = fixture.context + "/fifo"
        try Syscall.retrying("mkfifo", fifo) { mkfifo(fifo, 0o644) }

        let result = try fixture.archive()

        #expect(try fixture.entries().map(\.name) == ["regular"])
        #expect(result.entries == 1)
    }

    @Test func hardLinkedFilesAreStoredOnceThenAsLinks() throws {
        let fixture = try ContextFixture()
        try fixture.file("a", "shared content")
        let source = fixture.context + "/a"
        let target = fixture.context + "/b"
        try Syscall.retrying("link", target) { link(source, target) }

        let result = try fixture.archive()
        let entries = try fixture.entries()

        #expect(entries.map(\.name) == ["a", "b"])
        #expect(entries.map(\.type) == ["0", "1"])
        #expect(entries[1].link == "a")
        #expect(result.bytes == Int64("shared content".count))
    }

    @Test func theArchiveUnpacksWithLayerApplyIntoTheSameTree() throws {
        let fixture = try ContextFixture()
        try fixture.directory("bin", mode: 0o750)
        try fixture.file("bin/tool", "#!/bin/sh\necho hi\n", mode: 0o4755)
        try fixture.file("secret.key", "k", mode: 0o600)
        try fixture.file("empty")
        try fixture.file("café/menü.txt", "unicode names")
        // Larger than the 1 MiB chunk, and not a multiple of the tar block.
        let big: [UInt8] = (0..<(3 << 20) + 123).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try fixture.bytes("data/big.bin", big)
        try fixture.file(String(repeating: "long-name-", count: 12) + "/" + String(repeating: "x", count: 120), "far")
        try fixture.symlink("bin/link-to-tool", to: "tool")
        try fixture.symlink("up", to: "../../etc/passwd")
        let owned = fixture.context + "/secret.key"
        try Syscall.retrying("chown", owned) { lchown(owned, 1234, 5678) }
        // Known times, so that the comparison does not depend on sub-second precision.
        for path in try snapshot(fixture.context).keys {
            let full = fixture.context + "/" + path
            var times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 0), timespec(tv_sec: 1_700_000_000, tv_nsec: 0)]
            try Syscall.retrying("utimensat", full) { utimensat(AT_FDCWD, full, &times, AT_SYMLINK_NOFOLLOW) }
        }
        var directoryTimes = [timespec(tv_sec: 1_600_000_000, tv_nsec: 0), timespec(tv_sec: 1_600_000_000, tv_nsec: 0)]
        let bin = fixture.context + "/bin"
        try Syscall.retrying("utimensat", bin) { utimensat(AT_FDCWD, bin, &directoryTimes, 0) }

        let result = try fixture.archive()
        let unpacked = fixture.path + "/unpacked"
        try Syscall.mkdir(unpacked)
        let input = try Syscall.open(fixture.tarPath, flags: O_RDONLY)
        try Layer.apply(from: input, toDirectory: unpacked, whiteouts: .plain)

        let original = try snapshot(fixture.context)
        let copy = try snapshot(unpacked)
        #expect(copy == original)
        #expect(copy["bin/tool"]?.hasPrefix("mode=104755") == true)
        #expect(copy["secret.key"]?.contains("uid=1234 gid=5678") == true)
        #expect(copy["up"]?.contains("link=../../etc/passwd") == true)
        #expect(result.entries == original.count)
        let contentBytes: Int64 = (3 << 20) + 123 + 18 + 1 + 13 + 3
        #expect(result.bytes == contentBytes)
    }

    @Test func aContextOfFiveThousandFilesIsArchivedWhole() throws {
        let fixture = try ContextFixture()
        for directory in 0..<50 {
            for file in 0..<100 {
                try fixture.file("d\(directory)/f\(file).txt", "file \(directory)-\(file)\n")
            }
        }
        let result = try fixture.archive()
        #expect(result.entries == 5050)
        #expect(try fixture.entries().count == 5050)
    }

    @Test func aContextThatIsNotADirectoryIsAClearError() throws {
        let fixture = try ContextFixture()
        try fixture.file("plain", "x")
        let output = try Syscall.open(fixture.tarPath, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        let ignore = try DockerIgnore(patterns: [])

        let notDirectory = #expect(throws: AtollError.self) {
            try ContextArchive.write(contextDirectory: fixture.context + "/plain", ignore: ignore, to: output)
        }
        #expect(notDirectory?.code == .invalidArgument)
        #expect(notDirectory?.message == "build context \"\(fixture.context)/plain\" is not a directory")
        let missing = #expect(throws: AtollError.self) {
            try ContextArchive.write(contextDirectory: fixture.context + "/missing", ignore: ignore, to: output)
        }
        #expect(missing?.code == .notFound)
        #expect(missing?.message == "build context \"\(fixture.context)/missing\" does not exist")
    }
}
