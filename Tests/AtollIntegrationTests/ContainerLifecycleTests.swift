import Foundation
import Glibc
import Testing

/// Containers through the real CLI, daemon, conmon and runc on the real kernel.
@Suite(.serialized) struct ContainerLifecycleTests {
    @Test func runReportsOutputAndDockersExitStatuses() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()

        let hello = daemon.atoll(["run", "--rm", "busybox", "echo", "hello", "world"])
        #expect(hello.status == 0, "\(hello.stderr)")
        #expect(hello.stdout == "hello world\n")

        let streams = daemon.atoll(["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(streams.status == 3)
        #expect(streams.stdout == "out\n")
        #expect(streams.stderr == "err\n")

        let missing = daemon.atoll(["run", "--rm", "busybox", "no-such-command"])
        #expect(missing.status == 127)
        #expect(missing.stderr.contains("executable file not found"), "\(missing.stderr)")

        let notExecutable = daemon.atoll(["run", "--rm", "busybox", "/etc/passwd"])
        #expect(notExecutable.status == 126, "\(notExecutable.stderr)")

        let noImage = daemon.atoll(["run", "--rm", "no-such-image"])
        #expect(noImage.status == 125)
        #expect(noImage.stderr == "atoll: no such image: no-such-image\n")

        let badMemory = daemon.atoll(["run", "--rm", "-m", "12x", "busybox", "true"])
        #expect(badMemory.status == 125)
        #expect(badMemory.stderr.contains("invalid argument \"12x\" for \"-m, --memory\" flag"))

        let badUser = daemon.atoll(["run", "--rm", "-u", "nobody-here", "busybox", "true"])
        #expect(badUser.status == 125)
        #expect(badUser.stderr.contains("unable to find user nobody-here"), "\(badUser.stderr)")

        #expect(daemon.atoll(["create", "--name", "taken", "busybox", "true"]).status == 0)
        let taken = daemon.atoll(["run", "--name", "taken", "busybox", "true"])
        #expect(taken.status == 125)
        #expect(taken.stderr.contains("the container name \"/taken\" is already in use"))

        // --rm containers are gone, even those that never started; only "taken" is left.
        let all = daemon.atoll(["ps", "-a", "--format", "{{.Names}}"])
        #expect(all.stdout == "taken\n")
    }

    @Test func aDetachedContainerCanBeInspectedExecedPausedStoppedAndRemoved() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let run = daemon.atoll([
            "run", "-d", "--name", "ticker", "-e", "GREETING=hi", "--label", "team=infra", "busybox", "sh", "-c",
            "trap 'echo bye; exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ])
        #expect(run.status == 0, "\(run.stderr)")
        let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 64)

        #expect(daemon.atoll(["ps", "--format", "{{.Names}} {{.State}}"]).stdout == "ticker running\n")
        #expect(daemon.atoll(["ps", "-q", "--filter", "label=team=infra"]).stdout == "\(id.prefix(12))\n")
        #expect(daemon.atoll(["ps", "-q", "--filter", "label=team=other"]).stdout == "")
        #expect(DaemonFixture.eventually { daemon.atoll(["logs", "ticker"]).stdout.contains("tick 2\n") })
        let tail = daemon.atoll(["logs", "--tail", "1", "-t", "ticker"]).stdout
        #expect(tail.split(separator: "\n").count == 1)
        #expect(tail.contains("Z tick "), "timestamps come first: \(tail)")
        // A reader that goes away ends `logs -f` quietly (EPIPE, not a crash of the CLI).
        let headed = daemon.shellWithHost(
            "\(DaemonFixture.binDirectory)/atoll logs -f ticker | head -1; echo ${PIPESTATUS[0]}")
        #expect(headed.stdout == "tick 0\n0\n", "\(headed.stderr)")
        #expect(headed.stderr == "")
        // Any other failure to write is an error: a full disk must not pass for a finished export.
        let full = daemon.shellWithHost("\(DaemonFixture.binDirectory)/atoll logs ticker > /dev/full")
        #expect(full.status == 1)
        #expect(full.stderr.contains("cannot write to standard output: No space left on device"), "\(full.stderr)")

        let exec = daemon.atoll([
            "exec", "-e", "EXTRA=1", "-w", "/tmp", "ticker", "sh", "-c", "echo $GREETING$EXTRA; pwd; exit 4",
        ])
        #expect(exec.status == 4)
        #expect(exec.stdout == "hi1\n/tmp\n")
        #expect(daemon.atoll(["exec", "-u", "nobody", "ticker", "id", "-u"]).stdout == "65534\n")
        #expect(daemon.atoll(["exec", "ticker", "no-such-command"]).status == 127)
        let piped = DaemonFixture.shell(
            "echo via-stdin | ATOLL_HOST=unix://\(daemon.socket) \(DaemonFixture.binDirectory)/atoll exec -i ticker cat"
        )
        #expect(piped.stdout == "via-stdin\n")

        let top = daemon.atoll(["top", "ticker"])
        #expect(top.status == 0)
        #expect(top.stdout.contains("PID") && top.stdout.contains("while true"))
        let stats = daemon.atoll(["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}"])
        #expect(stats.stdout.hasPrefix("ticker "), "\(stats.stdout)")

        #expect(daemon.atoll(["pause", "ticker"]).status == 0)
        #expect(
            daemon.atoll(["inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "ticker"]).stdout == "paused true\n")
        #expect(daemon.atoll(["exec", "ticker", "true"]).status != 0)
        #expect(daemon.atoll(["unpause", "ticker"]).status == 0)

        let removeRunning = daemon.atoll(["rm", "ticker"])
        #expect(removeRunning.status == 1)
        #expect(removeRunning.stderr.contains("stop it first or use rm -f"))

        // The trap answers SIGTERM: a clean exit, well before the timeout.
        #expect(daemon.atoll(["stop", "-t", "5", "ticker"]).stdout == "ticker\n")
        #expect(
            daemon.atoll(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "ticker"]).stdout == "exited 0\n")
        #expect(daemon.atoll(["logs", "--tail", "1", "ticker"]).stdout == "bye\n")

        #expect(daemon.atoll(["start", "ticker"]).status == 0)
        #expect(daemon.atoll(["rename", "ticker", "renamed"]).status == 0)
        #expect(daemon.atoll(["kill", "-s", "KILL", "renamed"]).status == 0)
        #expect(daemon.atoll(["wait", "renamed"]).stdout == "137\n")
        #expect(daemon.atoll(["restart", "-t", "1", "renamed"]).status == 0)
        #expect(daemon.atoll(["inspect", "-f", "{{.State.Running}}", "renamed"]).stdout == "true\n")
        #expect(daemon.atoll(["rm", "-f", "renamed"]).status == 0)
        #expect(daemon.atoll(["ps", "-aq"]).stdout == "")

        #expect(daemon.atoll(["create", "--name", "idle", "busybox", "true"]).status == 0)
        #expect(daemon.atoll(["run", "--name", "done", "busybox", "true"]).status == 0)
        let prune = daemon.atoll(["container", "prune", "-f"])
        #expect(prune.stdout.contains("Deleted Containers:"))
        #expect(daemon.atoll(["ps", "-aq"]).stdout == "")
    }

    @Test func stdinAndARealTerminalReachTheContainer() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let atoll = "\(DaemonFixture.binDirectory)/atoll"
        let piped = daemon.shellWithHost("echo piped | \(atoll) run --rm -i busybox sh -c 'read x; echo got $x'")
        #expect(piped.stdout == "got piped\n", "\(piped.stderr)")
        // script(1) gives the CLI a pseudo-terminal of a known size.
        let tty = daemon.shellWithHost(
            "script -qec \"stty cols 91 rows 33; \(atoll) run --rm -it busybox sh -c 'tty; stty size; exit 5'\" /dev/null"
        )
        #expect(tty.stdout.contains("/dev/pts/0"), "\(tty.stdout) \(tty.stderr)")
        #expect(tty.stdout.contains("33 91"))
        #expect(tty.status == 5)
        // A reader that goes away ends `run -it` with the terminal out of raw mode again.
        let cooked = daemon.shellWithHost(
            "script -qec \"\(atoll) run -it --name chatty busybox sh -c 'while true; do echo y; done' | head -1; stty -a\" /dev/null"
        )
        #expect(cooked.stdout.contains(" icanon") && cooked.stdout.contains(" echo "), "\(cooked.stdout)")
        #expect(daemon.atoll(["rm", "-f", "chatty"]).status == 0)
    }

    @Test func securitySettingsAndLimitsReachTheKernel() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        func run(_ arguments: [String]) -> DaemonFixture.Result { daemon.atoll(["run", "--rm"] + arguments) }

        // Docker's 14 default capabilities: 0x00000000a80425fb.
        #expect(run(["busybox", "grep", "CapEff", "/proc/self/status"]).stdout.contains("00000000a80425fb"))
        #expect(
            run(["--cap-drop", "ALL", "busybox", "grep", "CapEff", "/proc/self/status"]).stdout.contains(
                "0000000000000000"))
        #expect(
            run(["--cap-add", "NET_ADMIN", "busybox", "grep", "CapEff", "/proc/self/status"]).stdout.contains(
                "00000000a80435fb"))
        #expect(
            run(["--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs", "/proc/self/status"]).stdout
                .contains("1"))
        #expect(run(["busybox", "grep", "Seccomp:", "/proc/self/status"]).stdout.contains("2"))
        #expect(run(["--privileged", "busybox", "grep", "Seccomp:", "/proc/self/status"]).stdout.contains("0"))
        // The default profile refuses unshare without CAP_SYS_ADMIN, for the first container and
        // for the next, which crun runs from the program it compiled for the first.
        for _ in 0..<2 {
            #expect(run(["busybox", "unshare", "-U", "true"]).stderr.contains("Operation not permitted"))
        }
        #expect(run(["--security-opt", "seccomp=unconfined", "busybox", "unshare", "-U", "true"]).status == 0)
        let sleeper = daemon.atoll(["run", "-d", "busybox", "sleep", "60"]).stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        let runtime = daemon.atoll(["inspect", "-f", "{{.HostConfig.Runtime}}", sleeper]).stdout
        let config =
            (try? String(contentsOfFile: "\(daemon.root)/containers/\(sleeper)/config.json", encoding: .utf8)) ?? ""
        #expect(config.contains("run.oci.seccomp_bpf_data") == (runtime == "crun\n"), "\(runtime)")
        #expect(daemon.atoll(["rm", "-f", sleeper]).status == 0)
        #expect(run(["--read-only", "busybox", "touch", "/file"]).status != 0)
        #expect(run(["busybox", "touch", "/file"]).status == 0)
        #expect(
            run(["busybox", "sh", "-c", "wc -c < /proc/timer_list"]).stdout.trimmingCharacters(
                in: .whitespacesAndNewlines) == "0")
        #expect(run(["busybox", "sh", "-c", "echo 1 > /proc/sys/kernel/domainname"]).status != 0)
        #expect(
            run(["-m", "64m", "busybox", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]).stdout == "67108864\n")
        #expect(run(["--pids-limit", "7", "busybox", "cat", "/sys/fs/cgroup/pids/pids.max"]).stdout == "7\n")
        #expect(run(["--ulimit", "nofile=123:456", "busybox", "sh", "-c", "ulimit -n"]).stdout == "123\n")
        #expect(run(["--shm-size", "8m", "busybox", "sh", "-c", "df -k /dev/shm | tail -1"]).stdout.contains("8192"))
        #expect(run(["--init", "busybox", "cat", "/proc/1/cmdline"]).stdout.hasPrefix("/sbin/atoll-init"))
        #expect(run(["-h", "box", "busybox", "hostname"]).stdout == "box\n")
        #expect(run(["-u", "1234:5678", "busybox", "id"]).stdout.hasPrefix("uid=1234 gid=5678"))
        #expect(run(["-w", "/var", "busybox", "pwd"]).stdout == "/var\n")
        #expect(run(["--network", "none", "busybox", "sh", "-c", "ls /sys/class/net"]).stdout == "lo\n")
        let tooMany = run(["--ulimit", "nofile=99999999", "busybox", "true"])
        #expect(tooMany.status == 125)
        #expect(tooMany.stderr.contains("exceeds this host's"))
    }

    @Test func restartPoliciesAndHealthChecksDriveTheContainer() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        #expect(
            daemon.atoll(["run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3"])
                .status == 0)
        #expect(
            DaemonFixture.eventually(15) {
                daemon.atoll(["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "flaky"]).stdout == "2 exited\n"
            })
        #expect(daemon.atoll(["inspect", "-f", "{{.State.ExitCode}}", "flaky"]).stdout == "3\n")

        #expect(
            daemon.atoll([
                "run", "-d", "--name", "checked", "--health-cmd", "test -f /tmp/ok", "--health-interval", "200ms",
                "--health-retries", "2", "busybox", "sleep", "1000",
            ]).status == 0)
        #expect(
            DaemonFixture.eventually(10) {
                daemon.atoll(["inspect", "-f", "{{.State.Health.Status}}", "checked"]).stdout == "unhealthy\n"
            })
        #expect(
            daemon.atoll(["ps", "--format", "{{.Status}}", "--filter", "name=checked"]).stdout.contains("(unhealthy)"))
        #expect(daemon.atoll(["exec", "checked", "touch", "/tmp/ok"]).status == 0)
        #expect(
            DaemonFixture.eventually(10) {
                daemon.atoll(["inspect", "-f", "{{.State.Health.Status}}", "checked"]).stdout == "healthy\n"
            })

        // Beyond Docker (moby#49161): an unhealthy container with a restart policy is restarted.
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "sick", "--restart", "always", "--health-cmd", "false", "--health-interval",
                "200ms", "--health-retries", "1", "busybox", "sleep", "1000",
            ]).status == 0)
        #expect(
            DaemonFixture.eventually(15) {
                (Int(
                    daemon.atoll(["inspect", "-f", "{{.RestartCount}}", "sick"]).stdout.trimmingCharacters(
                        in: .whitespacesAndNewlines)) ?? 0) >= 1
            })
        // A user's stop is final, even with --restart always.
        let stop = daemon.atoll(["stop", "-t", "1", "sick"])
        #expect(stop.status == 0, "\(stop.stderr)")
        usleep(500_000)
        #expect(daemon.atoll(["inspect", "-f", "{{.State.Status}}", "sick"]).stdout == "exited\n")
    }

    @Test func containersSurviveADaemonKilledWithSIGKILL() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "survivor", "busybox", "sh", "-c", "while true; do echo alive; sleep 0.2; done",
            ]).status == 0)
        #expect(
            daemon.atoll(["run", "-d", "--name", "finisher", "busybox", "sh", "-c", "sleep 1; echo done; exit 7"])
                .status == 0)
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 1",
            ]).status == 0)
        let pid = daemon.atoll(["inspect", "-f", "{{.State.Pid}}", "survivor"]).stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        daemon.crash()
        sleep(2)
        // The container ran on without the daemon, and "finisher" exited meanwhile.
        #expect(kill(Int32(pid) ?? -1, 0) == 0)
        try daemon.start()
        #expect(
            daemon.atoll(["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "survivor"]).stdout == "running \(pid)\n"
        )
        #expect(
            daemon.atoll(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "finisher"]).stdout == "exited 7\n")
        #expect(daemon.atoll(["logs", "finisher"]).stdout == "done\n")
        #expect(
            DaemonFixture.eventually(10) {
                (Int(
                    daemon.atoll(["inspect", "-f", "{{.RestartCount}}", "always"]).stdout.trimmingCharacters(
                        in: .whitespacesAndNewlines)) ?? 0) >= 2
            }, "the restart policy carries on after the daemon restarts")
        let before = daemon.atoll(["logs", "survivor"]).stdout.count
        #expect(DaemonFixture.eventually { daemon.atoll(["logs", "survivor"]).stdout.count > before })
        #expect(daemon.atoll(["stop", "-t", "1", "survivor"]).status == 0)
        #expect(daemon.atoll(["inspect", "-f", "{{.State.Status}}", "survivor"]).stdout == "exited\n")

        // Monitors gone too (as after a reboot): the state is reconciled, not left "running".
        #expect(daemon.atoll(["run", "-d", "--name", "orphan", "busybox", "sleep", "1000"]).status == 0)
        daemon.crash()
        for monitor in daemon.monitorPids() { kill(monitor, SIGKILL) }
        DaemonFixture.shell("pkill -KILL -f 'sleep 1000' || true")
        sleep(1)
        try daemon.start()
        let orphan = daemon.atoll(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "orphan"]).stdout
        #expect(orphan == "exited 137\n" || orphan == "exited 255\n", "\(orphan)")
        #expect(daemon.atoll(["rm", "orphan"]).status == 0)
    }

    /// Every runtime `info` says works runs containers when asked for by name: crun from its
    /// read-only mount, runc from its own path.
    @Test func eachWorkingRuntimeRunsContainers() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let working = daemon.atoll(["info"]).stdout.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ")
            return line.hasSuffix(": works") && !words.isEmpty ? String(words[0]) : nil
        }
        #expect(!working.isEmpty, "\(daemon.atoll(["info"]).stdout)")
        for runtime in working {
            let run = daemon.atoll(["run", "--rm", "--runtime", runtime, "busybox", "echo", "hello from \(runtime)"])
            #expect(run.status == 0 && run.stdout == "hello from \(runtime)\n", "\(runtime): \(run.stderr)")
            let id = daemon.atoll(["run", "-d", "--runtime", runtime, "busybox", "sleep", "30"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(daemon.atoll(["exec", id, "echo", "exec"]).stdout == "exec\n", "\(runtime)")
            #expect(daemon.atoll(["inspect", "-f", "{{.HostConfig.Runtime}}", id]).stdout == "\(runtime)\n")
            #expect(daemon.atoll(["rm", "-f", id]).status == 0)
        }
    }

    /// A container run with --rm is never mounted again, so its overlay skips the flush to disk at
    /// unmount (`volatile`); any other container's root keeps its writes durable.
    @Test func onlyRemovedOnExitContainersGetAVolatileRoot() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let kept = daemon.atoll(["run", "-d", "busybox", "sleep", "30"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let removed = daemon.atoll(["run", "-d", "--rm", "busybox", "sleep", "30"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        /// Whether the overlay at a container's root is volatile (newer kernels show it as
        /// `fsync=volatile`), nil when nothing is mounted there.
        func volatileRoot(_ id: String) -> Bool? {
            let root = "\(daemon.root)/containers/\(id)/rootfs"
            guard let options = DaemonFixture.mounts().first(where: { $0.point == root })?.options else { return nil }
            return options.contains("volatile") || options.contains("fsync=volatile")
        }
        // (A read of mountinfo can skip lines while other tests mount in parallel: read again.)
        #expect(DaemonFixture.eventually(5) { volatileRoot(removed) == true })
        #expect(DaemonFixture.eventually(5) { volatileRoot(kept) == false })
        #expect(daemon.atoll(["kill", removed]).status == 0)
        #expect(daemon.atoll(["wait", removed]).status == 0)
        #expect(daemon.atoll(["inspect", removed]).status != 0, "a --rm container is gone once it exits")
        #expect(volatileRoot(removed) == nil)
    }

    @Test func runsLeaveNoMountCgroupFileOrProcessBehind() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        var ids: [String] = []
        for index in 0..<10 {
            let run = daemon.atoll(["run", "-d", "busybox", "sh", "-c", "echo \(index)"])
            ids.append(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(daemon.atoll(["run", "--rm", "busybox", "true"]).status == 0)
        }
        for id in ids { _ = daemon.atoll(["wait", id]) }
        let runtimeName = daemon.atoll(["inspect", "-f", "{{.HostConfig.Runtime}}", ids[0]]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(daemon.atoll(["rm"] + ids).status == 0)
        // Below the daemon's directories only crun's read-only binary stays mounted (runc gains
        // nothing from one and runs from its own path).
        #expect(daemon.leftoverMounts().isEmpty, "no other mount below: \(daemon.leftoverMounts())")
        let sealed = "\(daemon.runDirectory)/runtimes/"
        let runtime = "\(sealed)\(runtimeName)"
        let runtimeSealed = DaemonFixture.eventually(runtimeName == "crun" ? 5 : 0) {
            DaemonFixture.isMountPoint(runtime)
        }
        #expect(runtimeSealed == (runtimeName == "crun"), "\(runtimeName)")
        if runtimeSealed {
            var fileSystem = statvfs()
            #expect(statvfs(runtime, &fileSystem) == 0 && fileSystem.f_flag & UInt(ST_RDONLY) != 0, "\(runtime)")
        }
        #expect(daemon.stop() == 0)
        #expect(!DaemonFixture.mounts().contains { $0.point.hasPrefix(sealed) }, "atolld unmounts the runtimes at stop")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.root)/containers")) ?? ["?"]).isEmpty)
        #expect(
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.runDirectory)/runtime")) ?? ["?"]).isEmpty)
        #expect(
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.runDirectory)/exits")) ?? ["?"]).isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.runDirectory)/s")) ?? ["?"]).isEmpty)
        for id in ids {
            for controller in ["memory", "pids", "cpu", "devices", "freezer"] {
                #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(controller)/atoll/\(id)"))
            }
        }
        #expect(daemon.monitorPids().isEmpty)
        #expect(daemon.snapshotDirectories().count == 1, "only the image's layer snapshot is left")
    }

    @Test func cpCopiesBothWaysAndNeverLeavesTheContainersRoot() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        let canary = "\(daemon.directory)/canary"
        try "untouched\n".write(toFile: canary, atomically: true, encoding: .utf8)
        // Symlinks planted in the container point at the host's paths, as CVE-2018-15664's did.
        let run = daemon.atoll([
            "run", "-d", "--name", "box", "busybox", "sh", "-c",
            "mkdir -p /data && echo inside > /data/f && ln -s / /data/escape && ln -s \(canary) /data/canary && sleep 1000",
        ])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(DaemonFixture.eventually { daemon.atoll(["exec", "box", "test", "-L", "/data/canary"]).status == 0 })

        let out = "\(daemon.directory)/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(daemon.atoll(["cp", "box:/data", out]).status == 0)
        #expect((try? String(contentsOfFile: "\(out)/data/f", encoding: .utf8)) == "inside\n")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(out)/data/canary")) == canary)

        // Copying out through the planted link reads the container's file system, not the host's.
        let through = daemon.atoll(["cp", "box:/data/canary", "-"])
        #expect(through.status == 0)
        #expect(!through.stdout.contains("untouched"), "a symlink is archived as a link, never followed")
        let viaRoot = daemon.atoll(["cp", "box:/data/escape\(canary)", "-"])
        #expect(viaRoot.status != 0, "the host file does not exist inside the container")

        // Copying in through the links lands inside the container.
        let local = "\(daemon.directory)/canary-name"
        try "from host\n".write(toFile: local, atomically: true, encoding: .utf8)
        #expect(daemon.atoll(["cp", local, "box:/data/escape/tmp"]).status == 0)
        #expect(daemon.atoll(["exec", "box", "cat", "/tmp/canary-name"]).stdout == "from host\n")
        #expect(daemon.atoll(["cp", local, "box:/data/escape\(daemon.directory)"]).status != 0)
        #expect((try? String(contentsOfFile: canary, encoding: .utf8)) == "untouched\n")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/canary-name"))

        // A stopped container's files can be copied too (its root is mounted for the copy only).
        #expect(daemon.atoll(["stop", "-t", "1", "box"]).status == 0)
        #expect(daemon.atoll(["cp", "box:/tmp/canary-name", out]).status == 0)
        #expect((try? String(contentsOfFile: "\(out)/canary-name", encoding: .utf8)) == "from host\n")
        #expect(
            !DaemonFixture.mounts().contains { $0.point.hasPrefix("\(daemon.root)/containers") },
            "the temporary mount is gone")
        #expect(daemon.atoll(["cp", "box:/nope", out]).stderr.contains("could not find \"/nope\" in container box"))
    }

    @Test func logsFollowAttachAndDetachedExecWork() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        try daemon.loadBusybox()
        #expect(
            daemon.atoll([
                "run", "-d", "--name", "counter", "busybox", "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done",
            ]).status == 0)
        // -f follows until the container stops; everything it wrote arrives.
        let follow = daemon.atoll(["logs", "-f", "counter"])
        #expect(follow.stdout == "1\n2\n3\n")
        // start -a attaches to the next run and answers its exit status.
        let again = daemon.atoll(["start", "-a", "counter"])
        #expect(again.stdout == "1\n2\n3\n")
        #expect(daemon.atoll(["logs", "counter"]).stdout == "1\n2\n3\n1\n2\n3\n", "logs carry across restarts")

        #expect(daemon.atoll(["run", "-d", "--name", "host", "busybox", "sleep", "1000"]).status == 0)
        #expect(daemon.atoll(["exec", "-d", "host", "sh", "-c", "sleep 0.2; touch /tmp/marker"]).status == 0)
        #expect(DaemonFixture.eventually { daemon.atoll(["exec", "host", "test", "-f", "/tmp/marker"]).status == 0 })
        #expect(daemon.atoll(["info"]).stdout.contains(" Containers: 2"))
        let attached = daemon.shellWithHost(
            "(sleep 1; \(DaemonFixture.binDirectory)/atoll kill host) & \(DaemonFixture.binDirectory)/atoll attach host"
        )
        #expect(attached.status == 137, "attach ends with the container's exit status: \(attached.stderr)")
        #expect(daemon.atoll(["attach", "host"]).stderr.contains("cannot attach to a stopped container"))
    }
}
