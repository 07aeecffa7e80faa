import Foundation
import Glibc
import Testing

/// Volumes and mounts through the real CLI, daemon, conmon and runc on the real kernel, with
/// canaries outside every root that must stay untouched.
@Suite(.serialized) struct VolumeLifecycleTests {
    @Test func namedVolumesAreCreatedListedInspectedAndRemovedLikeDockers() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()

        #expect(daemon.atoll(["volume", "create", "--label", "tier=back", "db"]).stdout == "db\n")
        // Creating it again is not an error (Docker), with other options it is.
        #expect(daemon.atoll(["volume", "create", "db"]).status == 0)
        let clash = daemon.atoll(["volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "db"])
        #expect(clash.status == 1)
        #expect(clash.stderr.contains("already exists with different options"), "\(clash.stderr)")

        // -v NAME:/path makes a missing volume; the data outlives the container.
        let write = daemon.atoll(["run", "--rm", "-v", "web:/data", "busybox", "sh", "-c", "echo persisted > /data/f"])
        #expect(write.status == 0, "\(write.stderr)")
        #expect(daemon.atoll(["run", "--rm", "-v", "web:/d:ro", "busybox", "cat", "/d/f"]).stdout == "persisted\n")
        let readOnly = daemon.atoll(["run", "--rm", "-v", "web:/d:ro", "busybox", "touch", "/d/g"])
        #expect(readOnly.status == 1)
        #expect(readOnly.stderr.contains("Read-only file system"))

        #expect(daemon.atoll(["volume", "ls", "-q"]).stdout == "db\nweb\n")
        #expect(
            daemon.atoll(["volume", "ls", "--filter", "label=tier=back", "--format", "{{.Name}} {{.Driver}}"]).stdout
                == "db local\n")
        #expect(daemon.atoll(["volume", "ls", "-q", "--filter", "name=we"]).stdout == "web\n")
        let inspect = daemon.atoll(["volume", "inspect", "-f", "{{.Mountpoint}} {{.Labels.tier}} {{.Scope}}", "db"])
        #expect(inspect.stdout == "\(daemon.root)/volumes/db/_data back local\n", "\(inspect.stderr)")
        #expect(daemon.atoll(["inspect", "--type", "volume", "-f", "{{.Name}}", "web"]).stdout == "web\n")

        // In use (even by a stopped container): refused, with or without -f; dangling filters follow.
        #expect(daemon.atoll(["create", "--name", "user", "-v", "db:/db", "busybox", "true"]).status == 0)
        let inUse = daemon.atoll(["volume", "rm", "-f", "db"])
        #expect(inUse.status == 1)
        #expect(inUse.stderr.contains("volume \"db\" is in use by container"), "\(inUse.stderr)")
        #expect(daemon.atoll(["volume", "ls", "-q", "--filter", "dangling=true"]).stdout == "web\n")
        #expect(daemon.atoll(["volume", "ls", "-q", "--filter", "dangling=false"]).stdout == "db\n")
        #expect(daemon.atoll(["volume", "rm", "nope"]).stderr.contains("no such volume: nope"))
        #expect(daemon.atoll(["volume", "rm", "-f", "nope"]).status == 0)

        // prune keeps named volumes unless -a; never one in use.
        #expect(daemon.atoll(["run", "--name", "anon", "-v", "/scratch", "busybox", "true"]).status == 0)
        #expect(daemon.atoll(["rm", "anon"]).status == 0)
        let anonymous = daemon.atoll(["volume", "ls", "-q"]).stdout.split(separator: "\n").map(String.init).filter {
            $0.count == 64
        }
        #expect(anonymous.count == 1)
        let prune = daemon.atoll(["volume", "prune", "-f"])
        #expect(prune.stdout.hasPrefix("Deleted Volumes:\n\(anonymous[0])\n"), "\(prune.stdout)")
        #expect(daemon.atoll(["volume", "ls", "-q"]).stdout == "db\nweb\n")
        #expect(daemon.atoll(["volume", "prune", "-a", "-f"]).stdout.contains("web\n"))
        #expect(daemon.atoll(["volume", "ls", "-q"]).stdout == "db\n")
        #expect(daemon.atoll(["rm", "user"]).status == 0)
        #expect(daemon.atoll(["volume", "rm", "db"]).stdout == "db\n")
        #expect(daemon.atoll(["volume", "ls", "-q"]).stdout == "")
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(daemon.root)/volumes") == [])
    }

    @Test func bindsTmpfsVolumesFromAndAnonymousVolumes() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let host = "\(daemon.directory)/host"

        // -v creates a missing host directory (as Docker); --mount refuses it, leaving nothing.
        let created = daemon.atoll(["run", "--rm", "-v", "\(host)/made:/x", "busybox", "sh", "-c", "echo hi > /x/a"])
        #expect(created.status == 0, "\(created.stderr)")
        #expect((try? String(contentsOfFile: "\(host)/made/a", encoding: .utf8)) == "hi\n")
        let missing = daemon.atoll(["run", "--mount", "type=bind,source=\(host)/absent,target=/x", "busybox", "true"])
        #expect(missing.status == 125)
        #expect(missing.stderr.contains("bind source path does not exist: \(host)/absent"), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(host)/absent"))
        let readOnlyBind = daemon.atoll([
            "run", "--rm", "--mount", "type=bind,source=\(host)/made,target=/x,readonly", "busybox", "sh", "-c",
            "cat /x/a; touch /x/b",
        ])
        #expect(readOnlyBind.stdout == "hi\n")
        #expect(readOnlyBind.stderr.contains("Read-only file system"))
        // A single file can be bound too.
        let file = daemon.atoll(["run", "--rm", "-v", "\(host)/made/a:/etc/motd:ro", "busybox", "cat", "/etc/motd"])
        #expect(file.stdout == "hi\n", "\(file.stderr)")

        let tmpfs = daemon.atoll([
            "run", "--rm", "--tmpfs", "/t:size=1m,mode=700", "--mount", "type=tmpfs,target=/u,tmpfs-size=2m",
            "busybox", "grep", "-E", " /(t|u) ", "/proc/mounts",
        ])
        #expect(
            tmpfs.stdout.contains("tmpfs /t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=700"),
            "\(tmpfs.stdout)")
        #expect(tmpfs.stdout.contains("tmpfs /u tmpfs rw,nosuid,nodev,noexec,relatime,size=2048k"), "\(tmpfs.stdout)")

        // --volumes-from carries volumes and binds, with :ro forcing read-only.
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "source", "-v", "shared:/shared", "-v", "/anon", "-v", "\(host)/made:/bound",
                "busybox", "sh", "-c", "echo s > /shared/s; echo a > /anon/a; sleep 300",
            ]).status == 0)
        #expect(DaemonFixture.eventually { daemon.atoll(["exec", "source", "cat", "/anon/a"]).stdout == "a\n" })
        let from = daemon.atoll([
            "run", "--rm", "--volumes-from", "source:ro", "busybox", "sh", "-c",
            "cat /shared/s /anon/a /bound/a; touch /shared/t",
        ])
        #expect(from.stdout == "s\na\nhi\n", "\(from.stderr)")
        #expect(from.stderr.contains("Read-only file system"))
        // cp reaches into the running container's volumes, not the root file system under them.
        try "copied\n".write(toFile: "\(daemon.directory)/c.txt", atomically: false, encoding: .utf8)
        #expect(daemon.atoll(["cp", "\(daemon.directory)/c.txt", "source:/shared/"]).status == 0)
        #expect(daemon.atoll(["exec", "source", "cat", "/shared/c.txt"]).stdout == "copied\n")
        #expect(
            DaemonFixture.shell(
                "\(DaemonFixture.binDirectory)/atoll -H unix://\(daemon.socket) cp source:/anon/a - | tar -xOf -"
            ).stdout == "a\n")
        let mounts = daemon.atoll(["inspect", "-f", "{{json .Mounts}}", "source"]).stdout
        #expect(mounts.contains("\"Name\":\"shared\""), "\(mounts)")
        #expect(mounts.contains("\"Type\":\"bind\""))

        // rm -v removes the anonymous volume, keeps the named one.
        let anonymous = daemon.atoll(["volume", "ls", "-q"]).stdout.split(separator: "\n").map(String.init).filter {
            $0.count == 64
        }
        #expect(anonymous.count == 1)
        #expect(daemon.atoll(["rm", "-fv", "source"]).status == 0)
        #expect(daemon.atoll(["volume", "ls", "-q"]).stdout == "shared\n")
        // --rm removes anonymous volumes too (the image's VOLUMEs are anonymous volumes).
        #expect(daemon.atoll(["run", "--rm", "-v", "/gone", "busybox", "true"]).status == 0)
        #expect(daemon.atoll(["volume", "ls", "-q"]).stdout == "shared\n")
        let duplicate = daemon.atoll(["run", "--rm", "-v", "a1:/x", "--tmpfs", "/x", "busybox", "true"])
        #expect(duplicate.status == 125)
        #expect(duplicate.stderr.contains("duplicate mount point: /x"))
        #expect(daemon.atoll(["volume", "ls", "-q"]).stdout == "shared\n")
    }

    @Test func aNewVolumeIsFilledFromTheImageAndSymlinksCannotReachTheHost() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let canary = "\(daemon.directory)/canary"
        try FileManager.default.createDirectory(atPath: canary, withIntermediateDirectories: true)
        try "keep".write(toFile: "\(canary)/k", atomically: false, encoding: .utf8)
        // An image whose /app/conf has content (owner 1000, mode 750), whose /evil points at the
        // host's canary (absolute), /climb climbs out (relative), and whose VOLUMEs try to escape.
        let rootfs = "\(daemon.directory)/rootfs"
        let setup = DaemonFixture.shell(
            """
            set -e
            mkdir -p \(rootfs)/bin \(rootfs)/app/conf
            cp /bin/busybox \(rootfs)/bin/
            for a in sh cat ls touch stat true; do ln -s busybox \(rootfs)/bin/$a; done
            echo secret > \(rootfs)/app/conf/c
            chown -R 1000:1000 \(rootfs)/app/conf && chmod 750 \(rootfs)/app/conf
            ln -s \(canary) \(rootfs)/evil
            ln -s ../../../../../../../..\(canary) \(rootfs)/climb
            tar -C \(rootfs) -cf \(daemon.directory)/hostile.tar .
            """)
        #expect(setup.status == 0, "\(setup.stderr)")
        let imported = daemon.atoll([
            "import", "-c", "VOLUME /app/conf", "-c", "VOLUME /../../../../..\(canary)/image-volume", "-c",
            "CMD [\"sh\"]", "\(daemon.directory)/hostile.tar", "hostile:1",
        ])
        #expect(imported.status == 0, "\(imported.stderr)")

        let run = daemon.atoll([
            "run", "--rm", "-v", "v1:/evil", "-v", "v2:/climb/sub", "hostile:1", "sh", "-c",
            "echo pwned > /evil/x; echo pwned > /climb/sub/y; echo pwned > \(canary)/image-volume/z; stat -c '%u:%g %a' /app/conf; cat /app/conf/c",
        ])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "1000:1000 750\nsecret\n", "copy-up keeps owner and mode: \(run.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: canary) == ["k"])
        #expect(try String(contentsOfFile: "\(canary)/k", encoding: .utf8) == "keep")
        // The writes landed in the volumes.
        #expect(FileManager.default.fileExists(atPath: "\(daemon.root)/volumes/v1/_data/x"))
        #expect(FileManager.default.fileExists(atPath: "\(daemon.root)/volumes/v2/_data/y"))

        // A new named volume is filled too; nocopy leaves it empty; a non-empty one is left alone.
        #expect(daemon.atoll(["run", "--rm", "-v", "conf:/app/conf", "hostile:1", "true"]).status == 0)
        #expect(try String(contentsOfFile: "\(daemon.root)/volumes/conf/_data/c", encoding: .utf8) == "secret\n")
        #expect(
            daemon.atoll(["run", "--rm", "-v", "empty:/app/conf:nocopy", "hostile:1", "ls", "/app/conf"]).stdout == "")
        #expect(
            daemon.atoll(["run", "--rm", "-v", "conf:/app/conf", "hostile:1", "sh", "-c", "echo mine > /app/conf/c"])
                .status == 0)
        #expect(
            daemon.atoll(["run", "--rm", "-v", "conf:/app/conf", "hostile:1", "cat", "/app/conf/c"]).stdout == "mine\n")
    }

    @Test func badVolumeInputIsAClearErrorAndCreatesNothing() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let cases: [([String], String)] = [
            (["volume", "create", "--driver", "nfs", "v1"], "unknown volume driver \"nfs\""),
            (["volume", "create", "-o", "colour=blue", "v1"], "invalid option \"colour\" for the local volume driver"),
            (["volume", "create", "-o", "type=nosuchfs", "-o", "device=x", "v1"], "not known to this kernel"),
            (["volume", "create", ".."], "invalid volume name \"..\""),
            (["volume", "create", "a/b"], "invalid volume name \"a/b\""),
            (["run", "-v", "v1:/", "busybox", "true"], "cannot mount over the container's root"),
            (["run", "-v", "v1:relative", "busybox", "true"], "must be an absolute path inside the container"),
            (["run", "-v", "a/../b:/x", "busybox", "true"], "cannot contain \"/\" or \"..\""),
            (
                ["run", "--mount", "type=volume,source=v1,target=/x,volume-driver=nfs", "busybox", "true"],
                "unknown volume driver"
            ),
            (
                ["run", "--mount", "type=volume,source=v1,target=/x,volume-opt=colour=blue", "busybox", "true"],
                "invalid option"
            ),
            (["run", "-v", "v1:/x", "--volumes-from", "nobody", "busybox", "true"], "no such container: nobody"),
        ]
        for (arguments, message) in cases {
            let result = daemon.atoll(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        // Nothing was created by any of them.
        #expect(daemon.atoll(["volume", "ls", "-q"]).stdout == "")
        #expect(daemon.atoll(["ps", "-aq"]).stdout == "")
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(daemon.root)/volumes") == [])
    }

    @Test func volumesSurviveDaemonCrashesAndTmpfsVolumesAreMountedWhileUsed() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        #expect(
            daemon.atoll(["volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=4m", "fast"])
                .status == 0)
        let data = "\(daemon.root)/volumes/fast/_data"
        #expect(!isMounted(data))
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "keeper", "-v", "fast:/fast", "-v", "disk:/disk", "busybox", "sh", "-c",
                "echo t > /fast/t; echo d > /disk/d; sleep 300",
            ]).status == 0)
        #expect(DaemonFixture.eventually { daemon.atoll(["exec", "keeper", "cat", "/fast/t"]).stdout == "t\n" })
        #expect(isMounted(data))

        // SIGKILL the daemon: the container keeps running with its volumes; the new daemon knows them.
        daemon.crash()
        try daemon.start()
        #expect(daemon.atoll(["exec", "keeper", "cat", "/fast/t", "/disk/d"]).stdout == "t\nd\n")
        #expect(isMounted(data))
        let df = daemon.atoll(["system", "df", "-v"])
        #expect(df.stdout.range(of: #"disk\s+1\s+\S+\s+keeper"#, options: .regularExpression) != nil, "\(df.stdout)")
        #expect(df.stdout.range(of: #"Local Volumes\s+2\s+2"#, options: .regularExpression) != nil, "\(df.stdout)")

        // Stopping the last user unmounts the tmpfs; the disk volume keeps its data after rm.
        #expect(daemon.atoll(["stop", "-t", "0", "keeper"]).status == 0)
        #expect(DaemonFixture.eventually { !isMounted(data) })
        #expect(daemon.atoll(["rm", "keeper"]).status == 0)
        daemon.stop()
        try daemon.start()
        #expect(daemon.atoll(["run", "--rm", "-v", "disk:/disk", "busybox", "cat", "/disk/d"]).stdout == "d\n")
        #expect(daemon.atoll(["volume", "rm", "fast", "disk"]).status == 0)
    }

    @Test func exportAndImportAreConsistentAndAtomic() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        // A writer that replaces a, then z, with a counter, without pause. Read at one point in
        // time, a is z or z + 1; read while it runs, z would be well past a, since tar reads a,
        // then the 64 MiB m, then z.
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "writer", "-v", "logs:/logs", "busybox", "sh", "-c",
                "mkdir -p /logs/d; echo deep > /logs/d/e; dd if=/dev/zero of=/logs/m bs=1M count=64 2>/dev/null; i=0; while true; do echo $i > /logs/.a; mv /logs/.a /logs/a; echo $i > /logs/.z; mv /logs/.z /logs/z; i=$((i+1)); done",
            ]).status == 0)
        #expect(DaemonFixture.eventually { daemon.atoll(["exec", "writer", "cat", "/logs/z"]).status == 0 })
        let archive = "\(daemon.directory)/logs.tar"
        let export = daemon.atoll(["volume", "export", "logs", "-o", archive])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(daemon.atoll(["inspect", "-f", "{{.State.Status}}", "writer"]).stdout == "running\n")
        let listing = DaemonFixture.shell("tar -tf \(archive) | sort").stdout
        #expect(listing.contains("a\nd/\nd/e\nm\n"), "\(listing)")
        let a = Int(DaemonFixture.shell("tar -xOf \(archive) a").stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let z = Int(DaemonFixture.shell("tar -xOf \(archive) z").stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        if let a, let z {
            #expect(a - z == 0 || a - z == 1, "the writer was paused while the volume was read: a=\(a) z=\(z)")
        } else {
            Issue.record("the archive lacks a or z: \(listing)")
        }

        // Import into a new volume; importing into one a running container uses is refused.
        #expect(daemon.atoll(["volume", "import", "copy", archive]).status == 0)
        #expect(daemon.atoll(["run", "--rm", "-v", "copy:/c", "busybox", "cat", "/c/d/e"]).stdout == "deep\n")
        #expect(daemon.atoll(["volume", "inspect", "-f", "{{.UsageData.Size}}", "copy"]).stdout.count >= 9)
        let busy = daemon.atoll(["volume", "import", "logs", archive])
        #expect(busy.status == 1)
        #expect(busy.stderr.contains("in use by running container writer"), "\(busy.stderr)")

        // A bad archive leaves the old content, no staging directory, and no new volume.
        try Data("not a tar at all".utf8).write(to: URL(fileURLWithPath: "\(daemon.directory)/bad.tar"))
        let bad = daemon.atoll(["volume", "import", "copy", "\(daemon.directory)/bad.tar"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("cannot import into volume \"copy\""), "\(bad.stderr)")
        #expect(daemon.atoll(["run", "--rm", "-v", "copy:/c", "busybox", "cat", "/c/d/e"]).stdout == "deep\n")
        #expect(daemon.atoll(["volume", "import", "fresh", "\(daemon.directory)/bad.tar"]).status == 1)
        #expect(daemon.atoll(["volume", "ls", "-q"]).stdout == "copy\nlogs\n")
        let entries = try FileManager.default.contentsOfDirectory(atPath: "\(daemon.root)/volumes").sorted()
        #expect(entries == ["copy", "logs"], "\(entries)")
        #expect(
            daemon.atoll(["volume", "export", "nope", "-o", "\(daemon.directory)/nope.tar"]).stderr.contains(
                "no such volume: nope"))
        #expect(!FileManager.default.fileExists(atPath: "\(daemon.directory)/nope.tar"))
    }

    /// Whether a file system is mounted at `path`: its device differs from its parent's. (Reading
    /// /proc/self/mountinfo can skip lines while other tests mount and unmount in parallel.)
    private func isMounted(_ path: String) -> Bool {
        var own = stat()
        var parent = stat()
        guard stat(path, &own) == 0, stat((path as NSString).deletingLastPathComponent, &parent) == 0 else {
            return false
        }
        return own.st_dev != parent.st_dev
    }
}
