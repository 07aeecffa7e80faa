import Foundation
import Testing

/// Untrusted layers through the whole daemon: every escape attempt fails with a specific error,
/// the canary outside the root stays untouched, and no blob, snapshot or mount is left behind.
@Suite(.serialized) struct HostileLayerTests {
    /// Python code that adds entries to `tar` (a tarfile opened for writing).
    static let cases: [(name: String, entries: String)] = [
        ("dot-dot climbing out", "add(tar, '../../../../../../tmp/CANARY', b'pwned')"),
        ("a symlink parent", "link(tar, 'escape', '/tmp'); add(tar, 'escape/CANARY', b'pwned')"),
        (
            "a relative symlink parent",
            "link(tar, 'up', '../../../../../../../../tmp'); add(tar, 'up/CANARY', b'pwned')"
        ),
        ("a hardlink to outside", "hard(tar, 'stolen', '../../../../../../tmp/CANARY')"),
        ("a bare whiteout", "add(tar, 'dir/.wh.', b'')"),
        ("a whiteout climbing out", "add(tar, '.wh...', b'')"),
    ]

    @Test(arguments: cases.map(\.name))
    func anEscapingLayerIsRejectedAndLeavesNothing(_ name: String) throws {
        let entries = try #require(Self.cases.first { $0.name == name }?.entries)
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let canaryDirectory = "\(daemon.directory)/outside"
        let canary = "\(canaryDirectory)/CANARY"
        try FileManager.default.createDirectory(atPath: canaryDirectory, withIntermediateDirectories: true)
        try "canary".write(toFile: canary, atomically: true, encoding: .utf8)
        let tarball = "\(daemon.directory)/hostile.tar"
        // Paths in the cases point at /tmp/CANARY; aim them at this test's own canary directory.
        let aimed = entries.replacingOccurrences(of: "/tmp", with: canaryDirectory)
            .replacingOccurrences(of: "tmp/CANARY", with: String(canary.dropFirst()))
        let script = """
            import io, tarfile
            def add(tar, name, data):
                info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
            def link(tar, name, target):
                info = tarfile.TarInfo(name); info.type = tarfile.SYMTYPE; info.linkname = target; tar.addfile(info)
            def hard(tar, name, target):
                info = tarfile.TarInfo(name); info.type = tarfile.LNKTYPE; info.linkname = target; tar.addfile(info)
            with tarfile.open('\(tarball)', 'w', format=tarfile.PAX_FORMAT) as tar:
                add(tar, 'ok.txt', b'fine')
                \(aimed)
            """
        try script.write(toFile: "\(daemon.directory)/make.py", atomically: true, encoding: .utf8)
        try #require(DaemonFixture.shell("python3 \(daemon.directory)/make.py").status == 0)

        let result = daemon.atoll(["import", tarball, "hostile:\(name.split(separator: " ").joined(separator: "-"))"])
        #expect(result.status == 1, "the import must fail: \(result.stdout)")
        #expect(result.stderr.hasPrefix("Error: cannot import the tarball"), "\(result.stderr)")
        #expect(try String(contentsOfFile: canary, encoding: .utf8) == "canary")
        #expect(try FileManager.default.contentsOfDirectory(atPath: canaryDirectory) == ["CANARY"])
        #expect(daemon.atoll(["images", "-q"]).stdout.isEmpty)
        #expect(daemon.blobs().isEmpty, "the tarball's blob is collected")
        #expect(daemon.snapshotDirectories().isEmpty, "the half-applied snapshot is removed")
        #expect(daemon.leftoverMounts().isEmpty, "\(daemon.leftoverMounts())")
    }

    @Test func aTarballThatIsNotATarFailsAndTheDaemonKeepsServing() throws {
        // (Decompression bombs are covered at the layer level with a small limit, in AtollStorageTests.)
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try #require(
            DaemonFixture.shell("head -c 300000 /dev/urandom | gzip > \(daemon.directory)/zeros.gz").status == 0)
        let result = daemon.atoll(["import", "\(daemon.directory)/zeros.gz", "zeros"])
        #expect(result.status == 1)
        #expect(daemon.blobs().isEmpty)
        #expect(daemon.snapshotDirectories().isEmpty)
        #expect(daemon.atoll(["version"]).status == 0)
    }
}

/// A client that dies halfway through an upload must not leave a truncated image behind.
@Suite(.serialized) struct InterruptedUploadTests {
    @Test func aKilledImportRecordsNothing() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let fifo = "\(daemon.directory)/upload.fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "\(DaemonFixture.binDirectory)/atoll")
        client.arguments = ["import", fifo, "cut:short"]
        client.environment = ["ATOLL_HOST": "unix://\(daemon.socket)"]
        try client.run()
        // Feed the first 4 MiB of a valid (plain) tar, cut at a 512-byte boundary, then kill the client.
        let writer = try #require(FileHandle(forWritingAtPath: fifo))
        let layer = DaemonFixture.shell(
            "tar -xOf \(BusyboxArchive.path) $(tar -tf \(BusyboxArchive.path) | grep layer.tar) | head -c 1048576 > \(daemon.directory)/part.tar"
        )
        try #require(layer.status == 0)
        writer.write(try Data(contentsOf: URL(fileURLWithPath: "\(daemon.directory)/part.tar")))
        usleep(300_000)
        kill(client.processIdentifier, SIGKILL)
        client.waitUntilExit()
        try? writer.close()
        // The daemon saw the stream break: nothing recorded, nothing left.
        for _ in 0..<50 where !daemon.blobs().isEmpty { usleep(100_000) }
        #expect(daemon.atoll(["images", "-q"]).stdout.isEmpty)
        #expect(daemon.blobs().isEmpty)
        #expect(daemon.snapshotDirectories().isEmpty)
        #expect(daemon.atoll(["version"]).status == 0)
    }
}
