import AtollCore
import AtollOCI
import AtollStorage
import Foundation
import GRDB
import Testing

@testable import AtollImages

/// A multi-layer image with whiteouts and opaque directories, loaded with each driver: overlay
/// unpacks layers in parallel and stacks them by rebasing, native unpacks them one on another.
/// Both must show the same tree.
@Suite(.serialized) struct MultiLayerLoadTests {
    /// Python that writes a docker-save archive: layer 1 has /a/keep, /a/gone, /d/old; layer 2
    /// whites out /a/gone and makes /d opaque with /d/new; layer 3 adds /a/added and a hardlink.
    static let archiveScript = #"""
        import hashlib, io, json, sys, tarfile
        def layer(entries):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name, kind, data in entries:
                    info = tarfile.TarInfo(name); info.mtime = 1700000000
                    if kind == "dir": info.type = tarfile.DIRTYPE; info.mode = 0o755; tar.addfile(info)
                    elif kind == "link": info.type = tarfile.LNKTYPE; info.linkname = data; tar.addfile(info)
                    else: info.size = len(data); info.mode = 0o644; tar.addfile(info, io.BytesIO(data))
            return buf.getvalue()
        layers = [
            layer([("a", "dir", None), ("a/keep", "file", b"keep"), ("a/gone", "file", b"gone"),
                   ("d", "dir", None), ("d/old", "file", b"old")]),
            layer([("a", "dir", None), ("a/.wh.gone", "file", b""), ("d", "dir", None),
                   ("d/.wh..wh..opq", "file", b""), ("d/new", "file", b"new")]),
            layer([("a", "dir", None), ("a/added", "file", b"added"), ("a/twin", "link", "a/added")]),
        ]
        config = json.dumps({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]},
            "config": {"Cmd": ["sh"]}}).encode()
        with tarfile.open(sys.argv[1], "w") as out:
            def add(name, data):
                info = tarfile.TarInfo(name); info.size = len(data); out.addfile(info, io.BytesIO(data))
            paths = []
            for l in layers:
                p = "blobs/sha256/" + hashlib.sha256(l).hexdigest(); add(p, l); paths.append(p)
            c = "blobs/sha256/" + hashlib.sha256(config).hexdigest(); add(c, config)
            add("manifest.json", json.dumps([{"Config": c, "RepoTags": ["layers:test"], "Layers": paths}]).encode())
        """#

    @Test(arguments: ["overlay", "native"])
    func whiteoutsAndOpaqueDirectoriesStackTheSameWithEachDriver(driver: String) throws {
        let base = "/tmp/atoll-images-test-\(Identifier.random().prefix(8))"
        defer {
            try? Mount.unmountAll(at: "\(base)/view")
            try? FileSystem.removeTree(base)
        }
        try Syscall.mkdirAll("\(base)/view")
        try Self.archiveScript.write(toFile: "\(base)/make.py", atomically: true, encoding: .utf8)
        let made = try Subprocess.run("/usr/bin/env", ["python3", "\(base)/make.py", "\(base)/image.tar"])
        try #require(made.succeeded, "\(made.stderr)")

        let database = try EngineDatabase.open(path: "\(base)/engine.db") { ImageService.registerMigrations(&$0) }
        let content = try ContentStore(root: "\(base)/content")
        let snapshotter: any Snapshotter =
            driver == "overlay"
            ? try OverlaySnapshotter(root: "\(base)/snapshots") : try NativeSnapshotter(root: "\(base)/snapshots")
        let images = ImageService(database: database, content: content, snapshotter: snapshotter)

        let loaded = try images.load(from: try Syscall.open("\(base)/image.tar", flags: O_RDONLY))
        #expect(loaded.map(\.reference) == ["layers:test"])
        let image = try images.resolve("layers:test")
        // Three layers, each a committed snapshot whose parent is the layer below.
        let snapshots = try snapshotter.list().filter { $0.kind == .committed }
        #expect(snapshots.count == 3)
        #expect(snapshots.filter { $0.parent == nil }.count == 1)
        #expect(try snapshotter.stat(image.topChainID).parent != nil)

        let mounts = try snapshotter.view("check", parent: image.topChainID, labels: [:])
        for mount in mounts { try mount.mount(at: "\(base)/view") }
        defer { try? Mount.unmountAll(at: "\(base)/view") }
        let tree = try Subprocess.run("/usr/bin/find", ["\(base)/view", "-mindepth", "1", "-printf", "%P %y\n"])
        let entries = tree.stdout.split(separator: "\n").map(String.init).sorted()
        #expect(entries == ["a d", "a/added f", "a/keep f", "a/twin f", "d d", "d/new f"])
        #expect(try FileSystem.readFile("\(base)/view/a/twin") == Array("added".utf8))
        let twin = try Syscall.stat("\(base)/view/a/twin")
        let added = try Syscall.stat("\(base)/view/a/added")
        #expect(twin.st_ino == added.st_ino, "the hardlink stays a hardlink")
        try Mount.unmountAll(at: "\(base)/view")
        try snapshotter.remove("check")

        // Removing the image takes every layer snapshot and blob with it.
        _ = try images.remove("layers:test", force: false)
        #expect(try snapshotter.list().isEmpty)
        #expect(try content.list().isEmpty)
    }
}
