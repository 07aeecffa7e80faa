import Foundation
import Testing

/// atolld and atoll as users meet them: versions, info, errors, locks and restarts.
@Suite(.serialized) struct EngineBasicsTests {
    @Test func versionAndInfoAnswerFromARealDaemon() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let version = daemon.atoll(["version"])
        #expect(version.status == 0)
        #expect(version.stdout.contains("Server:"))
        let info = daemon.atoll(["info"])
        #expect(info.status == 0, "\(info.stderr)")
        #expect(info.stdout.contains("Storage Driver: overlay"))
        #expect(info.stdout.contains("Atoll Root Dir: \(daemon.root)"))
        #expect(info.stdout.contains("Cgroup Version: "))
        #expect(info.stdout.contains("runc"), "runc is installed, so info lists it")
    }

    @Test func theCLISaysWhenTheDaemonIsNotRunning() throws {
        let result = DaemonFixture.run(
            "\(DaemonFixture.binDirectory)/atoll", ["images"],
            environment: ["ATOLL_HOST": "unix:///tmp/atoll-nothing-here.sock"])
        #expect(result.status == 1)
        #expect(
            result.stderr == "Error: cannot connect to atolld at unix:///tmp/atoll-nothing-here.sock — is it running?\n"
        )
        let flag = DaemonFixture.run(
            "\(DaemonFixture.binDirectory)/atoll", ["-H", "unix:///tmp/atoll-none.sock", "version"])
        #expect(flag.stderr.contains("cannot connect to atolld at unix:///tmp/atoll-none.sock"))
        let bad = DaemonFixture.run("\(DaemonFixture.binDirectory)/atoll", ["-H", "ftp://x", "images"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("invalid host \"ftp://x\""))
    }

    @Test func helpIsPrintedForTheCLIAndEachCommandWithoutADaemon() {
        for arguments in [["--help"], ["network", "create", "--help"], ["help", "pull"], ["run", "--help"]] {
            let help = DaemonFixture.run("\(DaemonFixture.binDirectory)/atoll", arguments)
            #expect(help.status == 0, "\(arguments): \(help.stderr)")
            #expect(help.stdout.hasPrefix("OVERVIEW: "), "\(arguments): \(help.stdout)\(help.stderr)")
            #expect(help.stdout.contains("USAGE: atoll"), "\(arguments)")
        }
    }

    @Test func aSecondDaemonOnTheSameRootIsRefused() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let second = DaemonFixture.run(
            "\(DaemonFixture.binDirectory)/atolld",
            [
                "--root", daemon.root, "--socket", "\(daemon.directory)/other.sock", "--exec-root",
                "\(daemon.directory)/run2",
            ])
        #expect(second.status != 0)
        #expect(second.stderr.contains("the root \(daemon.root) is already in use"), "\(second.stderr)")
        // The first daemon is untouched.
        #expect(daemon.atoll(["version"]).status == 0)
    }

    @Test func aSecondDaemonOnTheSameSocketIsRefused() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let second = DaemonFixture.run(
            "\(DaemonFixture.binDirectory)/atolld",
            [
                "--root", "\(daemon.directory)/root2", "--socket", daemon.socket, "--exec-root",
                "\(daemon.directory)/run2",
            ])
        #expect(second.status != 0)
        #expect(second.stderr.contains("another daemon is already listening on \(daemon.socket)"))
        #expect(daemon.atoll(["version"]).status == 0)
    }

    @Test func sigtermStopsTheDaemonCleanly() throws {
        let daemon = try DaemonFixture()
        defer { daemon.shutdown() }
        let attributes = try FileManager.default.attributesOfItem(atPath: daemon.socket)
        #expect((attributes[.posixPermissions] as? Int) == 0o660)
        #expect(daemon.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socket))
        // The lock is released: a new daemon takes the same root.
        try daemon.start()
        #expect(daemon.atoll(["version"]).status == 0)
    }

    @Test func anUnknownStorageDriverIsAClearError() throws {
        let daemon = try DaemonFixture(start: false)
        defer { daemon.shutdown() }
        let result = DaemonFixture.run(
            "\(DaemonFixture.binDirectory)/atolld",
            [
                "--root", daemon.root, "--socket", daemon.socket, "--exec-root", daemon.runDirectory,
                "--storage-driver", "zfs",
            ])
        #expect(result.status != 0)
        #expect(result.stderr.contains("unknown storage driver \"zfs\""))
    }
}
