import Foundation
import Testing

/// Images end to end through the CLI: load, list, inspect, tag, save, remove, prune, restart.
@Suite(.serialized) struct ImageLifecycleTests {
    static let busyboxID =
        "sha256:"
        + (DaemonFixture.shell(
            "tar -xOf \(BusyboxArchive.path) ./manifest.json | sed 's/.*\"Config\":\"\\([0-9a-f]*\\).json.*/\\1/'"
        ).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines))

    @Test(arguments: ["overlay", "native"])
    func loadListInspectAndRemoveWithEachDriver(driver: String) throws {
        let daemon = try DaemonFixture(storageDriver: driver)
        defer { daemon.shutdown() }
        let load = daemon.atoll(["load", "-i", BusyboxArchive.path])
        #expect(load.status == 0, "\(load.stderr)")
        #expect(load.stdout == "Loaded image: busybox:latest\n")

        let images = daemon.atoll(["images"])
        #expect(images.stdout.hasPrefix("REPOSITORY"))
        #expect(images.stdout.contains("busybox"))
        #expect(images.stdout.contains(String(Self.busyboxID.dropFirst(7).prefix(12))))
        #expect(daemon.atoll(["images", "-q"]).stdout == String(Self.busyboxID.dropFirst(7).prefix(12)) + "\n")
        #expect(daemon.atoll(["images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout == "busybox:latest\n")

        let inspect = daemon.atoll(["image", "inspect", "busybox"])
        #expect(inspect.status == 0)
        let document = try #require(
            try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]]
        ).first
        #expect(document?["Id"] as? String == Self.busyboxID)
        #expect((document?["Config"] as? [String: Any])?["Cmd"] as? [String] == ["sh"])
        #expect((document?["GraphDriver"] as? [String: Any])?["Name"] as? String == driver)

        // The unpacked layer is a real tree with busybox in it.
        let snapshots = daemon.snapshotDirectories(driver: driver)
        #expect(snapshots.count == 1)
        let busybox = "\(daemon.root)/snapshots/\(driver)/snapshots/\(snapshots[0])/fs/bin/busybox"
        #expect(FileManager.default.isExecutableFile(atPath: busybox))

        let rmi = daemon.atoll(["rmi", "busybox"])
        #expect(rmi.stdout == "Untagged: busybox:latest\nDeleted: \(Self.busyboxID)\n")
        #expect(daemon.blobs().isEmpty, "no orphan blob stays")
        #expect(daemon.snapshotDirectories(driver: driver).isEmpty, "no orphan snapshot directory stays")
        #expect(daemon.atoll(["images", "-q"]).stdout.isEmpty)
    }

    @Test func saveThenLoadKeepsTheImageIDAndDigests() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        #expect(daemon.atoll(["load", "-i", BusyboxArchive.path]).status == 0)
        let saved = "\(daemon.directory)/saved.tar"
        let save = daemon.atoll(["save", "-o", saved, "busybox:latest"])
        #expect(save.status == 0, "\(save.stderr)")
        let members = DaemonFixture.shell("tar -tf \(saved)").stdout
        #expect(members.contains("manifest.json"))
        #expect(members.contains("index.json"))
        #expect(members.contains("oci-layout"))
        let digestBefore = daemon.atoll(["images", "--digests", "--format", "{{.Digest}}"]).stdout

        #expect(daemon.atoll(["rmi", "busybox"]).status == 0)
        let load = daemon.atoll(["load", "-i", saved])
        #expect(load.stdout == "Loaded image: busybox:latest\n", "\(load.stderr)")
        #expect(daemon.atoll(["images", "--no-trunc", "-q"]).stdout == Self.busyboxID + "\n")
        #expect(daemon.atoll(["images", "--digests", "--format", "{{.Digest}}"]).stdout == digestBefore)

        // Saving to standard output gives the same bytes as saving to a file.
        let piped = DaemonFixture.shell(
            "ATOLL_HOST=unix://\(daemon.socket) \(DaemonFixture.binDirectory)/atoll save busybox:latest | cmp - \(saved)"
        )
        #expect(piped.status == 0, "\(piped.stdout) \(piped.stderr)")
    }

    @Test func aSavedArchiveIsReadBySkopeoAndASkopeoArchiveLoads() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        #expect(daemon.atoll(["load", "-i", BusyboxArchive.path]).status == 0)
        let saved = "\(daemon.directory)/saved.tar"
        #expect(daemon.atoll(["save", "-o", saved, "busybox"]).status == 0)
        // skopeo reads Atoll's archive as a docker archive and as an OCI archive.
        let viaDocker = DaemonFixture.shell(
            "skopeo copy -q docker-archive:\(saved) oci-archive:\(daemon.directory)/from-docker.tar:copied:v1")
        #expect(viaDocker.status == 0, "\(viaDocker.stderr)")
        let viaOCI = DaemonFixture.shell("skopeo copy -q oci-archive:\(saved):latest dir:\(daemon.directory)/dir")
        #expect(viaOCI.status == 0, "\(viaOCI.stderr)")

        // An OCI archive written by skopeo loads, with the same layers (skopeo rewrites the config
        // when it converts to OCI, so the image ID differs).
        let load = daemon.atoll(["load", "-i", "\(daemon.directory)/from-docker.tar"])
        #expect(load.status == 0, "\(load.stderr)")
        #expect(load.stdout == "Loaded image: copied:v1\n")
        let layers = daemon.atoll(["image", "inspect", "--format", "{{.RootFS}}", "copied:v1"]).stdout
        #expect(layers == daemon.atoll(["image", "inspect", "--format", "{{.RootFS}}", "busybox"]).stdout)
        // Layers shared by both names are stored and unpacked once.
        #expect(daemon.snapshotDirectories().count == 1)
    }

    @Test func podmanLoadsASavedArchiveWithTheSameImageID() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        #expect(daemon.atoll(["load", "-i", BusyboxArchive.path]).status == 0)
        let saved = "\(daemon.directory)/saved.tar"
        #expect(daemon.atoll(["save", "-o", saved, "busybox"]).status == 0)
        let podman =
            "podman --root \(daemon.directory)/podman --runroot \(daemon.directory)/podman-run --storage-driver vfs"
        defer { DaemonFixture.shell("\(podman) rmi -a -f") }
        let load = DaemonFixture.shell("\(podman) load -q -i \(saved)")
        #expect(load.status == 0, "\(load.stderr)")
        let images = DaemonFixture.shell("\(podman) images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}'")
        #expect(images.stdout == "docker.io/library/busybox:latest \(Self.busyboxID)\n", "\(images.stderr)")
    }

    @Test func dockerLoadsASavedArchiveAndAtollLoadsWhatDockerSaves() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        // A private dockerd (Debian's docker.io) on its own root, with no networking of its own.
        let docker = "\(daemon.directory)/docker"
        let started = DaemonFixture.shell(
            """
            mkdir -p \(docker)
            # dockerd outlives this shell: it must not inherit the pipes this test reads to their end.
            (for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
             exec /usr/sbin/dockerd --data-root \(docker)/root --exec-root \(docker)/exec \\
               -H unix://\(docker)/docker.sock --pidfile \(docker)/pid --bridge=none --iptables=false \\
               --ip-masq=false < /dev/null > \(docker)/log 2>&1) &
            for i in $(seq 1 100); do docker -H unix://\(docker)/docker.sock version >/dev/null 2>&1 && exit 0; sleep 0.1; done
            exit 1
            """)
        defer {
            DaemonFixture.shell(
                """
                pid=$(cat \(docker)/pid 2>/dev/null) && kill $pid && while kill -0 $pid 2>/dev/null; do sleep 0.1; done
                umount -R \(docker)/root 2>/dev/null; umount -R \(docker)/exec 2>/dev/null; true
                """)
        }
        try #require(started.status == 0, "dockerd did not start")
        let client = "docker -H unix://\(docker)/docker.sock"

        #expect(daemon.atoll(["load", "-i", BusyboxArchive.path]).status == 0)
        let saved = "\(daemon.directory)/saved.tar"
        #expect(daemon.atoll(["save", "-o", saved, "busybox"]).status == 0)
        let load = DaemonFixture.shell("\(client) load -i \(saved)")
        #expect(load.stdout.contains("Loaded image: busybox:latest"), "\(load.stdout) \(load.stderr)")
        let id = DaemonFixture.shell("\(client) image inspect --format '{{.Id}}' busybox:latest").stdout
        #expect(id == Self.busyboxID + "\n")

        // And back: an archive written by docker save loads into Atoll with the same image ID.
        #expect(DaemonFixture.shell("\(client) tag busybox:latest from/docker:1").status == 0)
        let dockerSaved = "\(daemon.directory)/docker-saved.tar"
        #expect(DaemonFixture.shell("\(client) save -o \(dockerSaved) from/docker:1").status == 0)
        let back = daemon.atoll(["load", "-i", dockerSaved])
        #expect(back.stdout == "Loaded image: from/docker:1\n", "\(back.stderr)")
        #expect(
            daemon.atoll(["image", "inspect", "--format", "{{.Id}}", "from/docker:1"]).stdout == Self.busyboxID + "\n")
    }

    @Test func anUmociLayoutLoads() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let layout = "\(daemon.directory)/layout"
        let rootfs = "\(daemon.directory)/bundle"
        let steps = DaemonFixture.shell(
            """
            set -e
            umoci init --layout \(layout)
            umoci new --image \(layout):tiny
            umoci unpack --image \(layout):tiny \(rootfs)
            echo hello > \(rootfs)/rootfs/greeting
            mkdir -p \(rootfs)/rootfs/etc && echo tiny > \(rootfs)/rootfs/etc/hostname
            umoci repack --image \(layout):tiny \(rootfs)
            umoci config --image \(layout):tiny --config.cmd /greeting
            tar -C \(layout) -cf \(daemon.directory)/layout.tar .
            """)
        try #require(steps.status == 0, "\(steps.stderr)")
        let load = daemon.atoll(["load", "-i", "\(daemon.directory)/layout.tar"])
        #expect(load.status == 0, "\(load.stderr)")
        let images = daemon.atoll(["images", "-q"]).stdout.split(separator: "\n")
        #expect(images.count == 1)
        let cmd = daemon.atoll(["image", "inspect", "--format", "{{.Config}}", String(images.first ?? "")]).stdout
        #expect(cmd.contains("/greeting"))
    }

    @Test func tagsUntagAndIDsBehaveAsInDocker() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        #expect(daemon.atoll(["load", "-i", BusyboxArchive.path]).status == 0)
        #expect(daemon.atoll(["tag", "busybox", "localhost:5000/tools/bb:1.0"]).status == 0)
        #expect(
            daemon.atoll(["images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout
                == "busybox:latest\nlocalhost:5000/tools/bb:1.0\n")
        let short = String(Self.busyboxID.dropFirst(7).prefix(12))
        let refused = daemon.atoll(["rmi", short])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("referenced by several names"))
        #expect(
            daemon.atoll(["rmi", "localhost:5000/tools/bb:1.0"]).stdout == "Untagged: localhost:5000/tools/bb:1.0\n")
        #expect(daemon.atoll(["tag", "nothing:here", "x"]).stderr == "Error: no such image: nothing:here\n")
        #expect(daemon.atoll(["tag", "busybox", "Bad:Name"]).status == 1)
        #expect(daemon.atoll(["rmi", "sha256:\(short.prefix(6))"]).status == 0)
        #expect(daemon.atoll(["images", "-q"]).stdout.isEmpty)
    }

    @Test func importMakesAOneLayerImageWithChanges() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let tree = "\(daemon.directory)/tree"
        try #require(
            DaemonFixture.shell(
                """
                set -e; mkdir -p \(tree)/bin \(tree)/etc; echo hi > \(tree)/etc/motd; cp /bin/busybox \(tree)/bin/
                tar -C \(tree) -czf \(daemon.directory)/rootfs.tgz .
                """
            ).status == 0)
        let result = daemon.atoll([
            "import", "--change", "CMD [\"/bin/busybox\", \"cat\", \"/etc/motd\"]", "-c", "ENV GREETING=hello",
            "-m", "my rootfs", "\(daemon.directory)/rootfs.tgz", "imported:v1",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("sha256:"))
        let config = daemon.atoll(["image", "inspect", "imported:v1"]).stdout
        #expect(config.contains("\"GREETING=hello\""))
        #expect(config.contains("\"/etc/motd\""))
        #expect(config.contains("my rootfs"))
        // Standard input works too, and a bad instruction is a clear error.
        let piped = daemon.atoll(["import", "-", "piped"], stdin: "\(daemon.directory)/rootfs.tgz")
        #expect(piped.status == 0, "\(piped.stderr)")
        let bad = daemon.atoll(["import", "--change", "FROB x", "\(daemon.directory)/rootfs.tgz", "bad"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("FROB"))
    }

    @Test func theDaemonKeepsEverythingAcrossARestart() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        #expect(daemon.atoll(["load", "-i", BusyboxArchive.path]).status == 0)
        #expect(daemon.atoll(["tag", "busybox", "kept:1"]).status == 0)
        let before = daemon.atoll(["images", "--no-trunc"]).stdout
        let blobs = daemon.blobs()
        daemon.stop()
        try daemon.start()
        #expect(daemon.atoll(["images", "--no-trunc"]).stdout == before)
        #expect(daemon.blobs() == blobs)
        #expect(daemon.atoll(["save", "-o", "\(daemon.directory)/after.tar", "kept:1"]).status == 0)
    }

    @Test func pruneRemovesDanglingImagesAndDfCountsThem() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        #expect(daemon.atoll(["load", "-i", BusyboxArchive.path]).status == 0)
        let df = daemon.atoll(["system", "df"])
        #expect(df.stdout.contains("Images"))
        #expect(df.stdout.split(separator: "\n").first { $0.hasPrefix("Images") }?.contains(" 1 ") == true)
        // Nothing dangling yet: prune keeps busybox; prune -a removes it (no container uses it).
        #expect(daemon.atoll(["image", "prune", "-f"]).stdout.contains("Total reclaimed space: 0B"))
        #expect(daemon.atoll(["images", "-q"]).stdout.isEmpty == false)
        let all = daemon.atoll(["image", "prune", "-a", "-f"])
        #expect(all.stdout.contains("untagged: busybox:latest"))
        #expect(daemon.atoll(["images", "-q"]).stdout.isEmpty)
        #expect(daemon.blobs().isEmpty)
    }

    @Test func loadRejectsWhatIsNotAnImageArchiveAndLeavesNothing() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try #require(
            DaemonFixture.shell(
                "mkdir -p \(daemon.directory)/junk && echo x > \(daemon.directory)/junk/file && tar -C \(daemon.directory)/junk -cf \(daemon.directory)/junk.tar ."
            ).status == 0)
        let junk = daemon.atoll(["load", "-i", "\(daemon.directory)/junk.tar"])
        #expect(junk.status == 1)
        #expect(junk.stderr.contains("neither manifest.json nor index.json"))
        let garbage = daemon.atoll(["load", "-i", "/etc/hostname"])
        #expect(garbage.status == 1)
        #expect(daemon.atoll(["load", "-i", "/nonexistent.tar"]).stderr.contains("cannot read /nonexistent.tar"))
        // A config whose diff ID does not match its layer.
        let corrupt = "\(daemon.directory)/corrupt"
        try #require(
            DaemonFixture.shell(
                """
                set -e; mkdir -p \(corrupt); tar -C \(corrupt) -xf \(BusyboxArchive.path)
                cfg=$(ls \(corrupt)/*.json | grep -v manifest.json)
                sed -i 's/"diff_ids":\\["sha256:[0-9a-f]*"/"diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"/' $cfg
                new=$(sha256sum $cfg | cut -d' ' -f1); mv $cfg \(corrupt)/$new.json
                sed -i "s/\\"Config\\":\\"[0-9a-f]*.json\\"/\\"Config\\":\\"$new.json\\"/" \(corrupt)/manifest.json
                tar -C \(corrupt) -cf \(daemon.directory)/corrupt.tar .
                """
            ).status == 0)
        let mismatch = daemon.atoll(["load", "-i", "\(daemon.directory)/corrupt.tar"])
        #expect(mismatch.status == 1)
        #expect(mismatch.stderr.contains("but the image config says"), "\(mismatch.stderr)")
        #expect(daemon.atoll(["images", "-q"]).stdout.isEmpty)
        #expect(daemon.blobs().isEmpty, "a failed load leaves no blob behind")
        #expect(daemon.snapshotDirectories().isEmpty, "a failed load leaves no snapshot behind")
    }
}
