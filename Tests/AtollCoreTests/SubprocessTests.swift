import Foundation
import Glibc
import Testing

@testable import AtollCore

@Suite struct SubprocessTests {
    @Test func outputOnBothStreamsAndTheExitStatusComeBack() throws {
        let result = try Subprocess.run(
            "/bin/sh", ["-c", "echo out; echo err >&2; echo $ATOLL_TEST_VALUE; exit 3"],
            environment: ["ATOLL_TEST_VALUE": "from-the-caller"])
        #expect(result.status == 3)
        #expect(result.stdout == "out\nfrom-the-caller\n")
        #expect(result.stderr == "err\n")
    }

    /// A program that prints more than a pipe holds before it reads its input must not deadlock
    /// against the writer of that input.
    @Test func largeInputAndOutputTogether() throws {
        let input = Data(repeating: 0x61, count: 300_000)
        let result = try Subprocess.run(
            "/bin/sh", ["-c", "head -c 200000 /dev/zero | tr '\\0' b; wc -c"], input: input)
        #expect(result.status == 0)
        #expect(result.stdout.count == 200_000 + "300000\n".count)
        #expect(result.stdout.hasSuffix("300000\n"))
    }

    @Test func aProgramThatExitsWithoutReadingItsInputIsNoError() throws {
        let result = try Subprocess.run("/bin/true", [], input: Data(repeating: 0, count: 1 << 20))
        #expect(result.status == 0)
    }

    @Test func anInputFileBecomesStandardInput() throws {
        let path = "/tmp/atoll-subprocess-\(getpid()).txt"
        try Data("from a file\n".utf8).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        #expect(try Subprocess.run("/bin/cat", [], inputFile: path).stdout == "from a file\n")
        #expect(throws: AtollError.self) { try Subprocess.run("/bin/cat", [], inputFile: path + ".missing") }
        #expect(throws: AtollError.self) { try Subprocess.run("/bin/cat", [], input: Data("x".utf8), inputFile: path) }
    }

    @Test func aReadErrorIsReturnedNotATrap() throws {
        // read(2) on a directory fails (EISDIR) every time, as a broken pipe might once.
        let directory = open("/", O_RDONLY | O_DIRECTORY)
        try #require(directory >= 0)
        let handle = FileHandle(fileDescriptor: directory, closeOnDealloc: true)
        guard case .failure(let error) = Subprocess.drain(handle) else {
            Issue.record("reading a directory succeeded")
            return
        }
        #expect(error.errno == EISDIR)
    }
}
