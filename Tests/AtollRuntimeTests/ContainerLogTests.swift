import AtollCore
import Foundation
import Testing

@testable import AtollRuntime

/// 2026-11-29T04:30:17.766118691Z.
private let example: Int64 = 1_795_926_617_766_118_691

/// One record in conmon's form, with a `+00:00` offset.
private func record(_ nanos: Int64, _ stream: String = "stdout", _ tag: String = "F", _ content: String) -> String {
    "\(LogLine.formatTimestamp(nanos).dropLast())+00:00 \(stream) \(tag) \(content)\n"
}

/// A log file under the temporary directory, removed when the test ends.
private final class TemporaryLog {
    let path: String

    init() {
        path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("atoll-log-test-\(UUID().uuidString).log").path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ text: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) }

    func append(_ text: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }

    var size: UInt64 {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.uint64Value ?? 0
    }

    var reader: ContainerLogReader { ContainerLogReader(path: path) }
}

private func texts(_ records: [LogRecord]) -> [String] {
    records.map { String(decoding: $0.content, as: UTF8.self) }
}

@Suite struct LogLineTests {
    @Test func aFullLineParsesWithItsTimestampStreamAndContent() throws {
        let line = Array("2026-11-29T04:30:17.766118691+00:00 stdout F hello  world\n".utf8)
        let parsed = try #require(LogLine.parse(line[...]))
        #expect(
            parsed
                == LogRecord(timestamp: example, stream: .stdout, partial: false, content: Array("hello  world".utf8)))
    }

    @Test func aPartialStderrLineParsesAsPartial() throws {
        let line = Array("2026-11-29T04:30:17.766118691+00:00 stderr P part one".utf8)
        let parsed = try #require(LogLine.parse(line[...]))
        #expect(parsed.stream == .stderr)
        #expect(parsed.partial)
        #expect(parsed.content == Array("part one".utf8))
    }

    @Test func offsetsAndShortFractionsAreHonoured() throws {
        let plusTwo = try #require(LogLine.parse(Array("2026-11-29T06:30:17.766118691+02:00 stdout F x".utf8)[...]))
        #expect(plusTwo.timestamp == example)
        let zulu = try #require(LogLine.parse(Array("2026-11-29T04:30:17.5Z stdout F x".utf8)[...]))
        #expect(zulu.timestamp == example - 266_118_691)
        let compact = try #require(LogLine.parse(Array("2026-11-29T04:30:17.766118691+0000 stdout F x".utf8)[...]))
        #expect(compact.timestamp == example)
    }

    @Test func emptyContentAndArbitraryBytesSurvive() throws {
        let empty = try #require(LogLine.parse(Array("2026-11-29T04:30:17.766118691+00:00 stdout F \n".utf8)[...]))
        #expect(empty.content.isEmpty)
        let bare = try #require(LogLine.parse(Array("2026-11-29T04:30:17.766118691+00:00 stdout F".utf8)[...]))
        #expect(bare.content.isEmpty)
        let bareLine = try #require(LogLine.parse(Array("2026-11-29T04:30:17.766118691+00:00 stdout F\n".utf8)[...]))
        #expect(bareLine.content.isEmpty)
        let bytes: [UInt8] = Array("2026-11-29T04:30:17.766118691+00:00 stdout F ".utf8) + [0xff, 0x00, 0x20, 0xc3]
        #expect(LogLine.parse(bytes[...])?.content == [0xff, 0x00, 0x20, 0xc3])
    }

    @Test(arguments: [
        "",
        "hello world",
        "2026-11-29T04:30:17.766118691+00:00",
        "2026-11-29T04:30:17.766118691+00:00 stdout",
        "2026-11-29T04:30:17.766118691+00:00 stdin F x",
        "2026-11-29T04:30:17.766118691+00:00 stdout X x",
        "2026-11-29T04:30:17.766118691+00:00 stdout FP x",
        "2026-13-29T04:30:17.766118691+00:00 stdout F x",
        "2026-02-30T04:30:17+00:00 stdout F x",
        "2026-11-29T04:30:17.766118691 stdout F x",
        "2026-11-29 stdout F x",
        "2026-11-29T04:30:17.+00:00 stdout F x",
    ])
    func malformedLinesAreRejected(_ text: String) {
        #expect(LogLine.parse(Array(text.utf8)[...]) == nil)
    }

    @Test func formatTimestampGivesDockersUTCForm() {
        #expect(LogLine.formatTimestamp(example) == "2026-11-29T04:30:17.766118691Z")
        #expect(LogLine.formatTimestamp(0) == "1970-01-01T00:00:00.000000000Z")
        #expect(LogLine.formatTimestamp(-1) == "1969-12-31T23:59:59.999999999Z")
        #expect(LogLine.formatTimestamp(951_782_400_000_000_007) == "2000-02-29T00:00:00.000000007Z")
    }

    @Test func formattedTimestampsParseBack() throws {
        for nanos: Int64 in [0, 1, example, 4_102_444_799_999_999_999, -86_400_000_000_001] {
            let line = Array("\(LogLine.formatTimestamp(nanos)) stdout F x".utf8)
            #expect(LogLine.parse(line[...])?.timestamp == nanos)
        }
    }
}

@Suite struct ContainerLogReaderTests {
    /// a | b1 b2 b3 | c — three lines, the middle one in three records.
    private let threeLines =
        record(example, "stdout", "F", "a") + record(example + 1, "stdout", "P", "b1")
        + record(example + 2, "stdout", "P", "b2") + record(example + 3, "stdout", "F", "b3")
        + record(example + 4, "stderr", "F", "c")

    @Test func aMissingFileReadsAsEmpty() throws {
        let reader = ContainerLogReader(path: "/nonexistent/atoll/ctr.log")
        let all = try reader.read(tail: nil, since: nil, until: nil)
        #expect(all.records.isEmpty && all.endOffset == 0)
        let tail = try reader.read(tail: 5, since: nil, until: nil)
        #expect(tail.records.isEmpty && tail.endOffset == 0)
        let follow = try reader.read(from: 100)
        #expect(follow.records.isEmpty && follow.endOffset == 0)
    }

    @Test func aDirectoryIsAnError() {
        #expect(throws: AtollError.self) {
            try ContainerLogReader(path: FileManager.default.temporaryDirectory.path).read(
                tail: nil, since: nil, until: nil)
        }
    }

    @Test func readingEverythingReturnsEveryRecordInOrder() throws {
        let log = TemporaryLog()
        try log.write(threeLines)
        let (records, end) = try log.reader.read(tail: nil, since: nil, until: nil)
        #expect(texts(records) == ["a", "b1", "b2", "b3", "c"])
        #expect(records.map(\.partial) == [false, true, true, false, false])
        #expect(records.last?.stream == .stderr)
        #expect(end == log.size)
        #expect(try log.reader.read(tail: -1, since: nil, until: nil).records.count == 5)
    }

    @Test func tailCountsLinesNotRecordsAndNeverStartsInsideAPartialRun() throws {
        let log = TemporaryLog()
        try log.write(threeLines)
        let reader = log.reader
        #expect(texts(try reader.read(tail: 0, since: nil, until: nil).records) == [])
        #expect(try reader.read(tail: 0, since: nil, until: nil).endOffset == log.size)
        #expect(texts(try reader.read(tail: 1, since: nil, until: nil).records) == ["c"])
        #expect(texts(try reader.read(tail: 2, since: nil, until: nil).records) == ["b1", "b2", "b3", "c"])
        #expect(texts(try reader.read(tail: 3, since: nil, until: nil).records) == ["a", "b1", "b2", "b3", "c"])
        #expect(texts(try reader.read(tail: 50, since: nil, until: nil).records) == ["a", "b1", "b2", "b3", "c"])
    }

    @Test func anUnfinishedPartialRunAtTheEndCountsAsALine() throws {
        let log = TemporaryLog()
        try log.write(threeLines + record(example + 5, "stdout", "P", "d1") + record(example + 6, "stdout", "P", "d2"))
        #expect(texts(try log.reader.read(tail: 1, since: nil, until: nil).records) == ["d1", "d2"])
        #expect(texts(try log.reader.read(tail: 2, since: nil, until: nil).records) == ["c", "d1", "d2"])
    }

    @Test func malformedRecordsAreSkipped() throws {
        let log = TemporaryLog()
        try log.write(record(example, "stdout", "F", "a") + "garbage\n" + record(example + 1, "stdout", "F", "b"))
        #expect(texts(try log.reader.read(tail: nil, since: nil, until: nil).records) == ["a", "b"])
        #expect(texts(try log.reader.read(tail: 1, since: nil, until: nil).records) == ["b"])
        #expect(texts(try log.reader.read(tail: 2, since: nil, until: nil).records) == ["a", "b"])
    }

    @Test func tailWorksOnAFileOfManyBlocks() throws {
        let log = TemporaryLog()
        var text = ""
        for index in 0..<20_000 {
            text += record(example + Int64(index), index % 2 == 0 ? "stdout" : "stderr", "F", "line \(index)")
        }
        // A last line of 40 records of 8 KiB each: it spans several 64 KiB blocks.
        let chunk = String(repeating: "x", count: 8192)
        for index in 0..<40 {
            text += record(example + 20_000 + Int64(index), "stdout", index == 39 ? "F" : "P", chunk)
        }
        try log.write(text)
        #expect(log.size > UInt64(ContainerLogReader.blockSize) * 10)

        let last = try log.reader.read(tail: 1, since: nil, until: nil)
        #expect(last.records.count == 40)
        #expect(last.records.allSatisfy { $0.content.count == 8192 })
        #expect(last.endOffset == log.size)

        let lastFour = try log.reader.read(tail: 4, since: nil, until: nil)
        #expect(texts(Array(lastFour.records.prefix(3))) == ["line 19997", "line 19998", "line 19999"])
        #expect(lastFour.records.count == 43)

        let many = try log.reader.read(tail: 15_001, since: nil, until: nil)
        #expect(texts(Array(many.records.prefix(2))) == ["line 5000", "line 5001"])
        #expect(many.records.count == 15_000 + 40)
    }

    @Test func sinceAndUntilKeepTheLinesInTheirRange() throws {
        let log = TemporaryLog()
        var text = ""
        for second in 0..<5 {
            text += record(example + Int64(second) * 1_000_000_000, "stdout", "F", "s\(second)")
        }
        try log.write(text)
        let reader = log.reader
        let second: Int64 = 1_000_000_000
        #expect(
            texts(try reader.read(tail: nil, since: example + 2 * second, until: nil).records) == ["s2", "s3", "s4"])
        #expect(texts(try reader.read(tail: nil, since: nil, until: example + second).records) == ["s0", "s1"])
        #expect(
            texts(try reader.read(tail: nil, since: example + second, until: example + 3 * second - 1).records)
                == ["s1", "s2"])
        // As in Docker, the tail is taken first and then filtered.
        #expect(texts(try reader.read(tail: 2, since: example + 2 * second, until: nil).records) == ["s3", "s4"])
        #expect(texts(try reader.read(tail: 2, since: nil, until: example + second).records) == [])
        #expect(try reader.read(tail: nil, since: example + 9 * second, until: nil).endOffset == log.size)
    }

    @Test func aPartialRunIsKeptOrDroppedWhole() throws {
        let log = TemporaryLog()
        try log.write(
            record(example, "stdout", "P", "early") + record(example + 10, "stdout", "F", "late")
                + record(example + 20, "stdout", "F", "next"))
        #expect(texts(try log.reader.read(tail: nil, since: example + 5, until: nil).records) == ["next"])
        #expect(texts(try log.reader.read(tail: nil, since: nil, until: example + 5).records) == ["early", "late"])
    }

    @Test func aFollowerGetsOnlyNewCompleteRecords() throws {
        let log = TemporaryLog()
        let complete = record(example, "stdout", "F", "one") + record(example + 1, "stderr", "F", "two")
        let unfinished = record(example + 2, "stdout", "F", "three")
        try log.write(complete + unfinished.dropLast(3))

        let first = try log.reader.read(tail: nil, since: nil, until: nil)
        #expect(texts(first.records) == ["one", "two"])
        #expect(first.endOffset == UInt64(complete.utf8.count))
        #expect(try log.reader.read(tail: 1, since: nil, until: nil).endOffset == first.endOffset)

        let nothingYet = try log.reader.read(from: first.endOffset)
        #expect(nothingYet.records.isEmpty)
        #expect(nothingYet.endOffset == first.endOffset)

        try log.append(String(unfinished.suffix(3)) + record(example + 3, "stdout", "P", "fo"))
        let second = try log.reader.read(from: first.endOffset)
        #expect(texts(second.records) == ["three", "fo"])
        #expect(second.records.last?.partial == true)
        #expect(second.endOffset == log.size)

        let third = try log.reader.read(from: second.endOffset)
        #expect(third.records.isEmpty && third.endOffset == second.endOffset)
    }

    @Test func aFollowerPastTheEndOfATruncatedFileStartsAgain() throws {
        let log = TemporaryLog()
        try log.write(record(example, "stdout", "F", "fresh"))
        let result = try log.reader.read(from: 1 << 20)
        #expect(texts(result.records) == ["fresh"])
        #expect(result.endOffset == log.size)
    }

    @Test func aFileWithoutAnyNewlineHasNothingToRead() throws {
        let log = TemporaryLog()
        try log.write(String(record(example, "stdout", "F", "half").dropLast()))
        let result = try log.reader.read(tail: 3, since: nil, until: nil)
        #expect(result.records.isEmpty && result.endOffset == 0)
        #expect(try log.reader.read(tail: nil, since: nil, until: nil).records.isEmpty)
    }
}

@Suite struct LogTimeTests {
    private let now = Date(timeIntervalSince1970: 1_800_000_000)
    private let nowNanos: Int64 = 1_800_000_000_000_000_000

    @Test func rfc3339WithZoneOrOffsetParses() throws {
        #expect(try LogTime.parse("2026-11-29T04:30:17.766118691Z", now: now) == example)
        #expect(try LogTime.parse("2026-11-29T06:30:17.766118691+02:00", now: now) == example)
        #expect(try LogTime.parse("2026-11-29T04:30:17Z", now: now) == example - 766_118_691)
        #expect(try LogTime.parse("2026-11-28T23:30:17-05:00", now: now) == example - 766_118_691)
    }

    @Test func aDateAloneIsMidnightLocalTime() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let midnight = try #require(calendar.date(from: DateComponents(year: 2026, month: 11, day: 29)))
        #expect(try LogTime.parse("2026-11-29", now: now) == Int64(midnight.timeIntervalSince1970) * 1_000_000_000)
        let withTime = try #require(
            calendar.date(from: DateComponents(year: 2026, month: 11, day: 29, hour: 4, minute: 30)))
        #expect(
            try LogTime.parse("2026-11-29T04:30", now: now) == Int64(withTime.timeIntervalSince1970) * 1_000_000_000)
    }

    @Test func unixTimestampsParseWithOrWithoutAFraction() throws {
        #expect(try LogTime.parse("1700000000", now: now) == 1_700_000_000_000_000_000)
        #expect(try LogTime.parse("1700000000.5", now: now) == 1_700_000_000_500_000_000)
        #expect(try LogTime.parse("1700000000.000000001", now: now) == 1_700_000_000_000_000_001)
        #expect(try LogTime.parse("0", now: now) == 0)
        #expect(try LogTime.parse("10", now: now) == 10_000_000_000)  // a bare number, not a duration
    }

    @Test func durationsCountBackFromNow() throws {
        #expect(try LogTime.parse("10m", now: now) == nowNanos - 600_000_000_000)
        #expect(try LogTime.parse("1h30m", now: now) == nowNanos - 5_400_000_000_000)
        #expect(try LogTime.parse("45s", now: now) == nowNanos - 45_000_000_000)
        #expect(try LogTime.parse("500ms", now: now) == nowNanos - 500_000_000)
        #expect(try LogTime.parse("1.5h", now: now) == nowNanos - 5_400_000_000_000)
        #expect(try LogTime.parse("2us", now: now) == nowNanos - 2_000)
    }

    @Test(arguments: [
        "", "yesterday", "10x", "m", "1h30", "2026-13-01", "2026-11-29T25:00:00Z", "2026-11-29T04:30:17.Z",
        "1700000000.", "17000a", "-5", "1.5.5", "99999999999999999999",
    ])
    func anythingElseIsRejectedWithAHint(_ text: String) {
        do {
            _ = try LogTime.parse(text, now: now)
            Issue.record("\"\(text)\" was accepted")
        } catch let error as AtollError {
            #expect(error.code == .invalidArgument)
            #expect(
                error.message
                    == "invalid time \"\(text)\": want an RFC 3339 date, a Unix timestamp or a duration such as 10m")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}
