import Foundation
import Testing

/// `atoll build` end to end: Dockerfiles to images (config and files), the cache, parallel
/// stages, errors and interruptions that leave nothing behind, and podman running the result.
@Suite struct BuildTests {
    /// A context directory with these files (path → content); removed with the daemon.
    static func context(_ daemon: DaemonFixture, _ files: [String: String], name: String = "ctx") throws -> String {
        let directory = "\(daemon.directory)/\(name)"
        for (path, content) in files {
            let url = URL(fileURLWithPath: "\(directory)/\(path)")
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try content.write(to: url, atomically: false, encoding: .utf8)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    static func config(_ daemon: DaemonFixture, _ image: String) throws -> [String: Any] {
        let inspect = daemon.atoll(["image", "inspect", image])
        let document = try #require(
            try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]]
        ).first
        return try #require(document?["Config"] as? [String: Any])
    }

    static func layerCount(_ daemon: DaemonFixture, _ image: String) throws -> Int {
        let inspect = daemon.atoll(["image", "inspect", image])
        let document = try #require(
            try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]]
        ).first
        return ((document?["RootFS"] as? [String: Any])?["Layers"] as? [Any])?.count ?? -1
    }

    /// Runs a shell line in a container of `image` and returns what it printed.
    static func inside(_ daemon: DaemonFixture, _ image: String, _ script: String) -> String {
        let run = daemon.atoll(["run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script])
        return run.stdout + (run.status == 0 ? "" : "[exit \(run.status): \(run.stderr)]")
    }

    /// Mounts, active snapshots and scratch directories a build may leave behind.
    static func leftovers(_ daemon: DaemonFixture) -> [String] {
        var found: [String] = []
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        found += mounts.split(separator: "\n").filter { $0.contains("\(daemon.root)/builds") }.map { "mount: \($0)" }
        let builds = (try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.root)/builds")) ?? []
        found += builds.map { "directory: builds/\($0)" }
        let runtime = (try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.runDirectory)/runtime")) ?? []
        found += runtime.filter { $0.hasPrefix("run-") }.map { "runtime state: \($0)" }
        return found
    }

    @Test func aDockerfileSetsTheImageConfigAsDockerDoes() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let context = try Self.context(
            daemon,
            [
                "Dockerfile": """
                # syntax=docker/dockerfile:1
                ARG BASE=busybox
                FROM $BASE:latest AS base
                ARG TARGETARCH
                ENV A=1 B="two words" ARCH=$TARGETARCH
                ENV C=${A}-x
                WORKDIR /app
                WORKDIR sub
                LABEL org.example.name="demo" version=$A
                EXPOSE 80 53/udp
                VOLUME ["/data"]
                STOPSIGNAL SIGINT
                HEALTHCHECK --interval=5s --retries=2 CMD true
                USER nobody
                ENTRYPOINT ["sh", "-c"]
                CMD ["echo hi"]
                ONBUILD RUN echo triggered
                """
            ])
        let build = daemon.atoll(["build", "-q", "-t", "demo:1", "--label", "extra=yes", context])
        #expect(build.status == 0, "\(build.stderr)")
        #expect(build.stdout.hasPrefix("sha256:"))
        let config = try Self.config(daemon, "demo:1")
        let env = config["Env"] as? [String] ?? []
        #expect(env.contains("A=1") && env.contains("B=two words") && env.contains("C=1-x"), "\(env)")
        let arch = DaemonFixture.shell("dpkg --print-architecture").stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        #expect(env.contains("ARCH=\(arch)"), "the automatic platform ARGs: \(env)")
        #expect(config["WorkingDir"] as? String == "/app/sub")
        #expect(config["User"] as? String == "nobody")
        #expect(config["Entrypoint"] as? [String] == ["sh", "-c"])
        #expect(config["Cmd"] as? [String] == ["echo hi"])
        #expect(config["StopSignal"] as? String == "SIGINT")
        #expect((config["ExposedPorts"] as? [String: Any]).map { Set($0.keys) } == ["80/tcp", "53/udp"])
        #expect((config["Volumes"] as? [String: Any]).map { Set($0.keys) } == ["/data"])
        #expect(
            config["Labels"] as? [String: String] == ["org.example.name": "demo", "version": "1", "extra": "yes"])
        let health = config["Healthcheck"] as? [String: Any]
        #expect(health?["Test"] as? [String] == ["CMD-SHELL", "true"])
        #expect(health?["Interval"] as? Int == 5_000_000_000)
        #expect(config["OnBuild"] as? [String] == ["RUN echo triggered"])
        // The image runs, with its entrypoint and command.
        let run = daemon.atoll(["run", "--rm", "--network", "none", "demo:1"])
        #expect(run.stdout == "hi\n", "\(run.stderr)")
        #expect(Self.inside(daemon, "demo:1", "pwd") == "/app/sub\n", "WORKDIR made its directory")
        // The history shows each instruction, newest first; config instructions made no layer.
        let history = daemon.atoll(["history", "--no-trunc", "demo:1"])
        #expect(history.status == 0, "\(history.stderr)")
        let lines = history.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("IMAGE") == true)
        #expect(lines.dropFirst().first?.contains("ONBUILD RUN echo triggered") == true, "\(history.stdout)")
        #expect(lines.contains { $0.contains("ENV A=1 B=\"two words\"") && $0.contains(" 0B ") }, "\(history.stdout)")
        #expect(lines.contains { $0.contains("WORKDIR /app") && !$0.contains(" 0B ") }, "\(history.stdout)")

        // A child image runs the ONBUILD trigger, and does not inherit it.
        let child = try Self.context(daemon, ["Dockerfile": "FROM demo:1\nUSER root\n"], name: "child")
        let childBuild = daemon.atoll(["build", "--progress", "plain", "-t", "child", child])
        #expect(childBuild.status == 0, "\(childBuild.stderr)")
        #expect(childBuild.stderr.contains("triggered"), "\(childBuild.stderr)")
        #expect(try Self.config(daemon, "child")["OnBuild"] == nil)
    }

    @Test func stepsMakeTheFileTreeAndIgnoredFilesStayOut() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let context = try Self.context(
            daemon,
            [
                "Dockerfile": """
                FROM busybox
                ARG DEST=/srv
                COPY hello.txt $DEST/
                COPY src/ /src/
                COPY *.md /docs/
                COPY --chown=nobody:nogroup --chmod=640 hello.txt /owned.txt
                ADD bundle.tar.gz /unpacked/
                RUN echo built > /built.txt && rmdir /home
                RUN <<EOF
                echo "from a heredoc" > /heredoc.txt
                EOF
                COPY <<EOT /etc/greeting
                hello there
                EOT
                WORKDIR /work
                RUN pwd > here.txt
                """,
                "hello.txt": "hello\n",
                "src/a.c": "int main(){}\n",
                "src/sub/b.h": "#define B\n",
                "README.md": "readme\n",
                "NOTES.md": "notes\n",
                "secret.key": "do not send\n",
                "logs/keep.log": "keep\n",
                "logs/drop.log": "drop\n",
                ".dockerignore": "*.key\nlogs\n!logs/keep.log\n",
            ])
        let made = DaemonFixture.shell(
            "mkdir -p \(daemon.directory)/t/pkg && echo inside > \(daemon.directory)/t/pkg/file && tar -czf \(context)/bundle.tar.gz -C \(daemon.directory)/t pkg"
        )
        #expect(made.status == 0)
        let build = daemon.atoll(["build", "-q", "-t", "tree", context])
        #expect(build.status == 0, "\(build.stderr)")
        let listing = Self.inside(
            daemon, "tree",
            """
            cat /srv/hello.txt /src/a.c /src/sub/b.h /docs/README.md /docs/NOTES.md /unpacked/pkg/file /built.txt \
              /heredoc.txt /etc/greeting /work/here.txt
            stat -c '%U:%G %a' /owned.txt
            test -e /home || echo gone
            """)
        #expect(
            listing == """
                hello
                int main(){}
                #define B
                readme
                notes
                inside
                built
                from a heredoc
                hello there
                /work
                nobody:nogroup 640
                gone

                """)
        // The context left out what .dockerignore excludes (-f names a Dockerfile outside it).
        let probe = try Self.context(
            daemon,
            ["Dockerfile": "FROM busybox\nCOPY . /ctx/\n"], name: "probe-df")
        let copyAll = daemon.atoll(["build", "-q", "-t", "all", "-f", "\(probe)/Dockerfile", context])
        #expect(copyAll.status == 0, "\(copyAll.stderr)")
        let files = Self.inside(daemon, "all", "cd /ctx && find . -type f | sort")
        #expect(files.contains("./logs/keep.log"))
        #expect(!files.contains("secret.key") && !files.contains("drop.log"), "\(files)")
        // Every step that changes files is one layer (WORKDIR too, when it creates the directory):
        // the base's plus ten.
        #expect(try Self.layerCount(daemon, "tree") == 11)
        #expect(Self.leftovers(daemon).isEmpty, "\(Self.leftovers(daemon))")
    }

    @Test func copyingOntoASymlinkedDirectoryFollowsItInsideTheImage() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        // A usrmerge-style link (/lib2 → usr/lib2), and an absolute link that would leave the
        // root if it were followed on the host.
        let context = try Self.context(
            daemon,
            [
                "Dockerfile": """
                FROM busybox
                RUN mkdir -p /usr/lib2 && ln -s usr/lib2 /lib2 && ln -s /etc /escape
                COPY tree/ /
                """,
                "tree/lib2/module.so": "module\n",
                "tree/escape/planted": "inside\n",
            ])
        let build = daemon.atoll(["build", "-q", "-t", "merged", context])
        #expect(build.status == 0, "\(build.stderr)")
        #expect(
            Self.inside(daemon, "merged", "test -L /lib2 && cat /usr/lib2/module.so /etc/planted")
                == "module\ninside\n")
        #expect(!FileManager.default.fileExists(atPath: "/etc/planted"), "nothing is written on the host")
    }

    @Test func runStepsGetTheHostsNameServersWithoutLeavingMountPointsAndWorkdirBelongsToUser() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let context = try Self.context(
            daemon,
            [
                "Dockerfile": """
                FROM busybox
                RUN --network=none rm -f /etc/resolv.conf /etc/hosts
                RUN test -e /etc/resolv.conf && echo "resolv.conf mounted" || true
                RUN --network=none test ! -e /etc/resolv.conf && echo "no mount point left"
                USER nobody
                WORKDIR /home/nobody/app
                RUN touch made-by-nobody && ls -ln made-by-nobody
                """
            ])
        let build = daemon.atoll(["build", "--progress", "plain", "-t", "dns", context])
        #expect(build.status == 0, "\(build.stderr)")
        if FileManager.default.fileExists(atPath: "/etc/resolv.conf") {
            #expect(build.stderr.contains("resolv.conf mounted"), "\(build.stderr)")
        }
        #expect(build.stderr.contains("no mount point left"), "\(build.stderr)")
        #expect(build.stderr.contains(" 65534 "), "the file belongs to nobody: \(build.stderr)")
    }

    @Test func stagesCopyFromEachOtherAndFromImagesAndTargetPicksOne() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let context = try Self.context(
            daemon,
            [
                "Dockerfile": """
                FROM busybox AS builder
                RUN mkdir /out && echo artifact > /out/app && mkfifo /out/pipe
                FROM scratch AS minimal
                COPY --from=builder /out/app /app
                COPY --from=busybox:latest /bin/busybox /bin/sh
                FROM busybox
                COPY --from=0 /out /opt/
                COPY --from=minimal /app /from-minimal
                CMD ["cat", "/opt/app", "/from-minimal"]
                """
            ])
        let build = daemon.atoll(["build", "-q", "-t", "multi", context])
        #expect(build.status == 0, "\(build.stderr)")
        #expect(daemon.atoll(["run", "--rm", "--network", "none", "multi"]).stdout == "artifact\nartifact\n")
        // A fifo among the files is copied as a fifo (inside a directory), never opened.
        #expect(Self.inside(daemon, "multi", "test -p /opt/pipe && echo fifo") == "fifo\n")
        let target = daemon.atoll(["build", "-q", "-t", "min", "--target", "minimal", context])
        #expect(target.status == 0, "\(target.stderr)")
        #expect(try Self.layerCount(daemon, "min") == 2)
        let run = daemon.atoll(["run", "--rm", "--network", "none", "min", "/bin/sh", "-c", "cat /app"])
        #expect(run.stdout == "artifact\n", "\(run.stderr)")
    }

    @Test(arguments: ["overlay", "native"])
    func anUnchangedRebuildIsAllCacheAndAnEditRebuildsFromTheStepThatReadsIt(driver: String) throws {
        let daemon = try DaemonFixture(storageDriver: driver)
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let context = try Self.context(
            daemon,
            [
                "Dockerfile": """
                FROM busybox
                RUN echo one > /one
                COPY a.txt /a.txt
                RUN echo two > /two
                COPY b.txt /b.txt
                RUN cat /a.txt /b.txt > /both
                """,
                "a.txt": "a\n", "b.txt": "b\n",
            ])
        func build(_ extra: [String] = []) -> (id: String, log: String) {
            let result = daemon.atoll(["build", "--progress", "plain", "-t", "cached"] + extra + [context])
            #expect(result.status == 0, "\(result.stderr)")
            let id = daemon.atoll(["image", "inspect", "--format", "{{.Id}}", "cached"]).stdout
            return (id, result.stderr)
        }
        func cachedSteps(_ log: String) -> [String] {
            let lines = log.split(separator: "\n").map(String.init)
            return lines.indices.compactMap { i in
                lines[i].hasSuffix(" CACHED") ? lines[i - 1].components(separatedBy: "] ").last : nil
            }
        }
        let first = build()
        #expect(cachedSteps(first.log).isEmpty)
        let second = build()
        #expect(
            cachedSteps(second.log) == [
                "RUN echo one > /one", "COPY a.txt /a.txt", "RUN echo two > /two", "COPY b.txt /b.txt",
                "RUN cat /a.txt /b.txt > /both",
            ], "\(second.log)")
        #expect(second.id == first.id, "an unchanged rebuild makes the same image")
        try "B\n".write(toFile: "\(context)/b.txt", atomically: false, encoding: .utf8)
        let edited = build()
        #expect(
            cachedSteps(edited.log) == ["RUN echo one > /one", "COPY a.txt /a.txt", "RUN echo two > /two"],
            "\(edited.log)")
        #expect(Self.inside(daemon, "cached", "cat /both") == "a\nB\n")
        let uncached = build(["--no-cache"])
        #expect(cachedSteps(uncached.log).isEmpty)
        // system df counts the cached steps: the first build's five and the two the edit redid.
        let df = daemon.atoll(["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        #expect(df.stdout.contains("Build Cache 7\n"), "\(df.stdout)")
        // Pruning the cache keeps what images use; --all forgets every step.
        #expect(daemon.atoll(["builder", "prune", "-a"]).status == 0)
        #expect(cachedSteps(build().log).isEmpty)
    }

    @Test func independentStagesBuildAtTheSameTime() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        // Each stage notes when its RUN began and ended; overlapping intervals mean they ran together.
        let context = try Self.context(
            daemon,
            [
                "Dockerfile": """
                FROM busybox AS a
                RUN cut -d' ' -f1 /proc/uptime > /start && sleep 1.5 && cut -d' ' -f1 /proc/uptime > /end
                FROM busybox AS b
                RUN cut -d' ' -f1 /proc/uptime > /start && sleep 1.5 && cut -d' ' -f1 /proc/uptime > /end
                FROM busybox
                COPY --from=a /start /a-start
                COPY --from=a /end /a-end
                COPY --from=b /start /b-start
                COPY --from=b /end /b-end
                """
            ])
        let build = daemon.atoll(["build", "-q", "-t", "parallel", context])
        #expect(build.status == 0, "\(build.stderr)")
        let times = Self.inside(daemon, "parallel", "cat /a-start /a-end /b-start /b-end")
            .split(separator: "\n").compactMap { Double($0) }
        try #require(times.count == 4, "\(times)")
        #expect(times[2] < times[1] && times[0] < times[3], "stage runs overlap: \(times)")
    }

    @Test(arguments: [
        ("FROM busybox\nCOPPY a /a\n", "Dockerfile:2", "unknown instruction"),
        ("FROM busybox\nCOPY missing.txt /x\n", "missing.txt", "no such file"),
        ("FROM busybox\nCOPY ../outside /x\n", "../outside", "outside the build context"),
        ("FROM busybox\nRUN echo first-line && echo last-words && exit 3\n", "status 3", "last-words"),
        (
            "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n", "cycle",
            "→ \"a\" →"
        ),
        ("FROM 127.0.0.1:9/nothing:1\n", "127.0.0.1:9/nothing:1", "is not here and cannot be pulled"),
        ("FROM --platform=linux/s390x busybox\n", "FROM --platform=linux/s390x", "builds for"),
    ])
    func badDockerfilesFailClearlyAndLeaveNothing(dockerfile: String, first: String, second: String) throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let snapshotsBefore = daemon.snapshotDirectories()
        let context = try Self.context(daemon, ["Dockerfile": dockerfile, "a": "a\n"])
        let build = daemon.atoll(["build", "--progress", "plain", "-t", "bad", context])
        #expect(build.status != 0)
        #expect(build.stderr.contains(first) && build.stderr.contains(second), "\(build.stderr)")
        #expect(daemon.atoll(["images", "-q", "bad"]).stdout.isEmpty)
        #expect(Self.leftovers(daemon).isEmpty, "\(Self.leftovers(daemon))")
        #expect(daemon.snapshotDirectories() == snapshotsBefore, "no snapshot of a failed step stays")
    }

    @Test func anInterruptedBuildStopsItsStepAndLeavesNothing() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let context = try Self.context(
            daemon, ["Dockerfile": "FROM busybox\nRUN echo $((6 * 7)) started && sleep 37.5\n"])
        let cli = try Self.startBuild(daemon, context)
        #expect(DaemonFixture.shell("pgrep -f 'sleep 37.5'").status == 0, "the step runs")
        // The build's ID, from where its step is mounted: its cgroups are named after it.
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        let buildID = mounts.split(separator: " ").first { $0.hasPrefix("\(daemon.root)/builds/") }
            .map { $0.dropFirst(daemon.root.count + 8).prefix { $0 != "/" } }
        try #require(buildID != nil, "the step's root is mounted under builds/")
        kill(cli.processIdentifier, SIGKILL)
        cli.waitUntilExit()
        #expect(
            DaemonFixture.eventually(15) { DaemonFixture.shell("pgrep -f 'sleep 37.5'").status != 0 },
            "the step's process is killed")
        #expect(DaemonFixture.eventually(10) { Self.leftovers(daemon).isEmpty }, "\(Self.leftovers(daemon))")
        let cgroups = DaemonFixture.shell("find /sys/fs/cgroup -maxdepth 4 -name 'run-\(buildID ?? "")-*'").stdout
        #expect(cgroups.isEmpty, "no cgroup of the step stays: \(cgroups)")
    }

    @Test func aBuildCutShortByADaemonCrashIsCleanedUpWhenTheDaemonStartsAgain() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let snapshotsBefore = daemon.snapshotDirectories()
        let context = try Self.context(
            daemon, ["Dockerfile": "FROM busybox\nRUN echo $((6 * 7)) started && sleep 38.5\n"])
        let cli = try Self.startBuild(daemon, context)
        daemon.crash()
        cli.waitUntilExit()
        #expect(cli.terminationStatus != 0)
        #expect(DaemonFixture.shell("pgrep -f 'sleep 38.5'").status == 0, "the step outlived the daemon")
        try daemon.start()
        #expect(
            DaemonFixture.eventually(10) { DaemonFixture.shell("pgrep -f 'sleep 38.5'").status != 0 },
            "the new daemon stops the step")
        #expect(Self.leftovers(daemon).isEmpty, "\(Self.leftovers(daemon))")
        #expect(daemon.snapshotDirectories() == snapshotsBefore)
        let again = try Self.context(daemon, ["Dockerfile": "FROM busybox\nRUN echo again > /again\n"], name: "again")
        let build = daemon.atoll(["build", "-q", "-t", "again", again])
        #expect(build.status == 0, "\(build.stderr)")
    }

    /// Starts `atoll build` on a context whose RUN prints "42 started", and waits until it does.
    static func startBuild(_ daemon: DaemonFixture, _ context: String) throws -> Process {
        let cli = Process()
        cli.executableURL = URL(fileURLWithPath: "\(DaemonFixture.binDirectory)/atoll")
        cli.arguments = ["build", "--progress", "plain", context]
        cli.environment = ["ATOLL_HOST": "unix://\(daemon.socket)"]
        let log = "\(daemon.directory)/build-\(UUID().uuidString.prefix(6)).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        cli.standardError = FileHandle(forWritingAtPath: log)
        try cli.run()
        #expect(
            DaemonFixture.eventually(20) {
                ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("42 started")
            })
        return cli
    }

    @Test func podmanRunsABuiltImageSavedByAtoll() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let context = try Self.context(
            daemon,
            [
                "Dockerfile":
                    "FROM busybox\nCOPY greeting /greeting\nRUN echo built >> /greeting\nCMD [\"cat\", \"/greeting\"]\n",
                "greeting": "hello from atoll\n",
            ])
        #expect(daemon.atoll(["build", "-q", "-t", "greeter:1", context]).status == 0)
        let saved = "\(daemon.directory)/greeter.tar"
        #expect(daemon.atoll(["save", "-o", saved, "greeter:1"]).status == 0)
        let runtime = DaemonFixture.shell("command -v runc").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let podman =
            "podman --root \(daemon.directory)/podman --runroot \(daemon.directory)/podman-run --storage-driver vfs --runtime \(runtime)"
        defer { DaemonFixture.shell("\(podman) rm -a -f; \(podman) rmi -a -f") }
        let load = DaemonFixture.shell("\(podman) load -q -i \(saved)")
        #expect(load.status == 0, "\(load.stderr)")
        let run = DaemonFixture.shell("\(podman) run --rm --network none docker.io/library/greeter:1")
        #expect(run.stdout == "hello from atoll\nbuilt\n", "\(run.stderr)")
    }
}
