import AtollCore
import Foundation

/// Which of a container's output streams a log record came from.
public enum LogStream: String, Sendable {
    case stdout, stderr
}

/// One record of a conmon "k8s-file" log: one line of the file.
public struct LogRecord: Sendable, Equatable {
    /// When conmon read the output, in nanoseconds since the Unix epoch.
    public var timestamp: Int64
    public var stream: LogStream
    /// True for a `P` record: the output continues in the next record of the same stream and had
    /// no newline here. False for an `F` record, which ends a line.
    public var partial: Bool
    /// The output, without the record's trailing newline.
    public var content: [UInt8]

    public init(timestamp: Int64, stream: LogStream, partial: Bool, content: [UInt8]) {
        self.timestamp = timestamp
        self.stream = stream
        self.partial = partial
        self.content = content
    }
}

/// The "k8s-file" record format conmon writes (the CRI logging format):
/// `TIMESTAMP STREAM TAG CONTENT\n`, e.g. `2026-11-29T04:30:17.766118691+00:00 stdout F hello`.
/// TIMESTAMP is RFC 3339 with nanoseconds; STREAM is `stdout` or `stderr`; TAG is `F` for a full
/// line or `P` for a partial one that continues in the next record.
public enum LogLine {
    private static let space = UInt8(ascii: " ")
    private static let newline = UInt8(ascii: "\n")

    /// Parses one record, with or without its trailing newline; nil when it is malformed.
    public static func parse(_ line: ArraySlice<UInt8>) -> LogRecord? {
        let record = line.last == newline ? line.dropLast() : line
        guard let header = header(record) else { return nil }
        return LogRecord(
            timestamp: header.timestamp, stream: header.stream, partial: header.partial,
            content: Array(record[header.contentStart...]))
    }

    /// Docker's timestamp form: UTC with nine fraction digits, `2026-11-29T04:30:17.766118691Z`.
    public static func formatTimestamp(_ nanos: Int64) -> String {
        let (seconds, fraction) = floorDivide(nanos, 1_000_000_000)
        let (days, secondOfDay) = floorDivide(seconds, 86_400)
        let (year, month, day) = CivilDate.fromDays(days)
        let yearText = year < 0 ? "-" + pad(-year, 4) : pad(year, 4)
        return "\(yearText)-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
            + "\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(fraction, 9))Z"
    }

    struct Header {
        var timestamp: Int64
        var stream: LogStream
        var partial: Bool
        var contentStart: Int
    }

    /// Parses everything but the content, which it does not copy.
    static func header(_ line: ArraySlice<UInt8>) -> Header? {
        guard let firstSpace = line.firstIndex(of: space),
            let timestamp = RFC3339.parse(line[line.startIndex..<firstSpace], requireSeconds: true)?.utcNanos(
                localOffset: nil)
        else { return nil }
        let afterTime = firstSpace + 1
        guard let secondSpace = line[afterTime...].firstIndex(of: space) else { return nil }
        let streamName = line[afterTime..<secondSpace]
        let stream: LogStream
        if streamName.elementsEqual("stdout".utf8) {
            stream = .stdout
        } else if streamName.elementsEqual("stderr".utf8) {
            stream = .stderr
        } else {
            return nil
        }
        // The tag may carry further colon-separated fields after P or F (CRI); only the first counts.
        let tagStart = secondSpace + 1
        let tagEnd = line[tagStart...].firstIndex(of: space) ?? line.endIndex
        let tag = line[tagStart..<tagEnd]
        guard let flag = tag.first, tag.count == 1 || tag[tag.startIndex + 1] == UInt8(ascii: ":") else {
            return nil
        }
        let partial: Bool
        switch flag {
        case UInt8(ascii: "F"): partial = false
        case UInt8(ascii: "P"): partial = true
        default: return nil
        }
        // An empty full line may be written without the space before its (empty) content.
        let contentStart = tagEnd == line.endIndex ? tagEnd : tagEnd + 1
        return Header(timestamp: timestamp, stream: stream, partial: partial, contentStart: contentStart)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    private static func floorDivide(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let quotient = value / divisor
        let remainder = value % divisor
        return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
    }
}

/// Reads a container's "k8s-file" log without loading more of it than the answer needs.
///
/// A *line* is what `docker logs --tail` counts: a run of `P` records ended by an `F` record, or a
/// lone `F` record (a trailing run of `P` records still waiting for its `F` counts as one line
/// too). Only records ended by a newline are read; `endOffset` is the file offset just after the
/// last of them, so a follower calls `read(from: endOffset)` again to get what was appended since.
public struct ContainerLogReader: Sendable {
    public let path: String
    static let blockSize = 64 << 10

    public init(path: String) { self.path = path }

    /// The whole log, or its last `tail` lines (`nil` or negative for all, 0 for none), keeping
    /// the lines whose first record's timestamp lies within `since...until` (nanoseconds since the
    /// epoch, either bound optional). As in Docker, the tail is taken before the time filter.
    /// A missing file reads as no records with `endOffset` 0.
    public func read(tail: Int?, since: Int64?, until: Int64?) throws -> (records: [LogRecord], endOffset: UInt64) {
        guard let file = try open() else { return ([], 0) }
        defer { try? file.close() }
        let size = try io("seek to the end of") { try file.seekToEnd() }
        var scanner = BackwardRecordScanner(file: file, end: size)
        // Drop an unfinished last record: its bytes are not consumed until its newline arrives.
        let completeEnd = try scanner.skipUnterminatedTail(self)
        var start: UInt64 = 0
        if let tail, tail >= 0 {
            start = try tailStart(lines: tail, scanner: &scanner, completeEnd: completeEnd)
            if start == completeEnd { return ([], completeEnd) }
        }
        let (records, _) = try readForward(file, from: start, limit: completeEnd, since: since, until: until)
        return (records, completeEnd)
    }

    /// The complete records from `offset` on, and the offset just after the last of them. An
    /// offset past the end of the file (it was truncated) reads from the start.
    public func read(from offset: UInt64) throws -> (records: [LogRecord], endOffset: UInt64) {
        guard let file = try open() else { return ([], 0) }
        defer { try? file.close() }
        let size = try io("seek to the end of") { try file.seekToEnd() }
        let start = offset > size ? 0 : offset
        return try readForward(file, from: start, limit: nil, since: nil, until: nil)
    }

    /// Walks back from `completeEnd` over `lines` lines; returns where the earliest begins.
    private func tailStart(lines: Int, scanner: inout BackwardRecordScanner, completeEnd: UInt64) throws -> UInt64 {
        var start = completeEnd
        var counted = 0
        var inLine = false
        while let (offset, header) = try scanner.previous(self) {
            guard let header else { continue }  // a malformed record belongs to no line
            if !header.partial || !inLine {
                // An F record, or the unfinished run of P records at the very end, ends a line.
                if counted == lines { break }
                counted += 1
                inLine = true
            }
            start = offset
        }
        return start
    }

    /// Reads complete records from `start` up to `limit` (or to the end of the file as it is
    /// now), returning them and the offset after the last newline.
    private func readForward(
        _ file: FileHandle, from start: UInt64, limit: UInt64?, since: Int64?, until: Int64?
    ) throws -> ([LogRecord], UInt64) {
        try io("seek in") { try file.seek(toOffset: start) }
        var records: [LogRecord] = []
        var pending: [UInt8] = []  // bytes of a record not yet ended by a newline
        var consumed = start
        var position = start
        var lineIncluded = true
        var atLineStart = true
        while limit.map({ position < $0 }) ?? true {
            let want = limit.map { Int(min(UInt64(Self.blockSize), $0 - position)) } ?? Self.blockSize
            guard let data = try io("read", { try file.read(upToCount: want) }), !data.isEmpty else { break }
            position += UInt64(data.count)
            pending.append(contentsOf: data)
            var lineStart = pending.startIndex
            while let newline = pending[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
                if let record = LogLine.parse(pending[lineStart..<newline]) {
                    if atLineStart {
                        lineIncluded = record.timestamp >= (since ?? .min) && record.timestamp <= (until ?? .max)
                    }
                    if lineIncluded { records.append(record) }
                    atLineStart = !record.partial
                }
                lineStart = newline + 1
            }
            consumed += UInt64(lineStart - pending.startIndex)
            pending.removeSubrange(pending.startIndex..<lineStart)
        }
        return (records, consumed)
    }

    private func open() throws -> FileHandle? {
        do {
            return try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile || error.code == .fileNoSuchFile {
            return nil
        } catch {
            throw AtollError.internalError("cannot open container log \"\(path)\"", cause: error)
        }
    }

    func io<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw AtollError.internalError("cannot \(what) container log \"\(path)\"", cause: error)
        }
    }
}

/// Steps backwards through the newline-terminated records of a file, a block at a time.
private struct BackwardRecordScanner {
    let file: FileHandle
    /// The bytes from `lower` to the end of the next record to return (its newline included).
    var buffer: [UInt8] = []
    var lower: UInt64

    init(file: FileHandle, end: UInt64) {
        self.file = file
        self.lower = end
    }

    /// Removes the bytes after the last newline; returns the offset just after that newline.
    mutating func skipUnterminatedTail(_ reader: ContainerLogReader) throws -> UInt64 {
        while true {
            if let newline = buffer.lastIndex(of: UInt8(ascii: "\n")) {
                buffer.removeSubrange((newline + 1)...)
                return lower + UInt64(newline + 1)
            }
            buffer.removeAll(keepingCapacity: true)
            guard try loadEarlierBlock(reader) else { return 0 }
        }
    }

    /// The record before those already returned: its offset and header (nil when malformed), or
    /// nil at the start of the file.
    mutating func previous(_ reader: ContainerLogReader) throws -> (UInt64, LogLine.Header?)? {
        guard !buffer.isEmpty || lower > 0 else { return nil }
        while true {
            // buffer ends with this record's newline; look for the one before it.
            let searchEnd = buffer.count - 1
            if searchEnd >= 0, let newline = buffer[..<searchEnd].lastIndex(of: UInt8(ascii: "\n")) {
                let header = LogLine.header(buffer[(newline + 1)..<searchEnd])
                let offset = lower + UInt64(newline + 1)
                buffer.removeSubrange((newline + 1)...)
                return (offset, header)
            }
            if lower == 0 {
                let header = searchEnd >= 0 ? LogLine.header(buffer[..<searchEnd]) : nil
                buffer.removeAll()
                return (0, header)
            }
            guard try loadEarlierBlock(reader) else { return nil }
        }
    }

    /// Prepends the block before `lower`; false at the start of the file.
    private mutating func loadEarlierBlock(_ reader: ContainerLogReader) throws -> Bool {
        guard lower > 0 else { return false }
        let count = Int(min(UInt64(ContainerLogReader.blockSize), lower))
        let from = lower - UInt64(count)
        try reader.io("seek in") { try file.seek(toOffset: from) }
        var block: [UInt8] = []
        block.reserveCapacity(count + buffer.count)
        while block.count < count {
            guard let data = try reader.io("read", { try file.read(upToCount: count - block.count) }), !data.isEmpty
            else {
                throw AtollError.internalError("container log \"\(reader.path)\" shrank while it was read")
            }
            block.append(contentsOf: data)
        }
        block.append(contentsOf: buffer)
        buffer = block
        lower = from
        return true
    }
}

/// Docker's `--since` and `--until` values.
public enum LogTime {
    /// Parses `text` as Docker does (moby `api/types/time.GetTimestamp`) into nanoseconds since
    /// the epoch: a Go duration such as `10m`, `1h30m` or `500ms` means that long before `now`;
    /// an RFC 3339 date-time with or without a fraction and with `Z` or an offset; the same
    /// without a zone, or a date alone (`2006-01-02`), in the local time zone; or a Unix timestamp
    /// in seconds with an optional fraction (`1700000000.5`).
    public static func parse(_ text: String, now: Date) throws -> Int64 {
        let invalid = AtollError.invalidArgument(
            "invalid time \"\(text)\": want an RFC 3339 date, a Unix timestamp or a duration such as 10m")
        let bytes = Array(text.utf8)
        if text != "0", let duration = GoDuration.parse(bytes[...]) {
            let nowNanos = (now.timeIntervalSince1970 * 1e9).rounded()
            guard abs(nowNanos) < 9e18 else { throw invalid }
            let (result, overflow) = Int64(nowNanos).subtractingReportingOverflow(duration)
            guard !overflow else { throw invalid }
            return result
        }
        if bytes.contains(UInt8(ascii: "-")) {
            guard let fields = RFC3339.parse(bytes[...], requireSeconds: false) else { throw invalid }
            let localOffset: Int64?
            if fields.offsetSeconds == nil, let utc = fields.utcNanos(localOffset: 0) {
                let date = Date(timeIntervalSince1970: Double(utc) / 1e9)
                localOffset = Int64(TimeZone.current.secondsFromGMT(for: date))
            } else {
                localOffset = nil
            }
            guard let nanos = fields.utcNanos(localOffset: localOffset) else { throw invalid }
            return nanos
        }
        guard let nanos = unixTimestamp(bytes[...]) else { throw invalid }
        return nanos
    }

    /// `SECONDS[.FRACTION]`, digits only.
    private static func unixTimestamp(_ bytes: ArraySlice<UInt8>) -> Int64? {
        let dot = bytes.firstIndex(of: UInt8(ascii: "."))
        let whole = bytes[bytes.startIndex..<(dot ?? bytes.endIndex)]
        guard let seconds = Digits.value(whole) else { return nil }
        var fraction: Int64 = 0
        if let dot {
            guard let parsed = Digits.fraction(bytes[(dot + 1)...]) else { return nil }
            fraction = parsed
        }
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return nil }
        let (sum, overflow2) = scaled.addingReportingOverflow(fraction)
        return overflow2 ? nil : sum
    }
}

/// Decimal digit runs.
enum Digits {
    /// The value of a non-empty run of digits, or nil (also on overflow).
    static func value(_ bytes: ArraySlice<UInt8>) -> Int64? {
        guard !bytes.isEmpty else { return nil }
        var value: Int64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !overflow, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    /// A fraction's digits as nanoseconds (digits past the ninth are dropped); nil if empty.
    static func fraction(_ bytes: ArraySlice<UInt8>) -> Int64? {
        guard !bytes.isEmpty else { return nil }
        var nanos: Int64 = 0
        var scale: Int64 = 100_000_000
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            nanos += Int64(byte - UInt8(ascii: "0")) * scale
            scale /= 10
        }
        return nanos
    }
}

/// Proleptic Gregorian dates as days since 1970-01-01 (Howard Hinnant's algorithms).
enum CivilDate {
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func fromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

/// RFC 3339 date-times, and the shorter forms Docker accepts.
struct RFC3339 {
    var year: Int64
    var month: Int64
    var day: Int64
    var hour: Int64 = 0
    var minute: Int64 = 0
    var second: Int64 = 0
    var nanos: Int64 = 0
    /// Seconds east of UTC; nil when the text named no zone.
    var offsetSeconds: Int64?

    /// `YYYY-MM-DD[Thh[:mm[:ss[.fraction]]]][Z|±hh:mm|±hhmm]`; with `requireSeconds`, the full
    /// `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm|±hhmm)`.
    static func parse(_ text: ArraySlice<UInt8>, requireSeconds: Bool) -> RFC3339? {
        var cursor = Cursor(bytes: text)
        guard let year = cursor.number(4), cursor.skip("-"), let month = cursor.number(2), cursor.skip("-"),
            let day = cursor.number(2)
        else { return nil }
        var result = RFC3339(year: year, month: month, day: day)
        if cursor.skip("T") || cursor.skip("t") {
            guard let hour = cursor.number(2) else { return nil }
            result.hour = hour
            if cursor.skip(":") {
                guard let minute = cursor.number(2) else { return nil }
                result.minute = minute
                if cursor.skip(":") {
                    guard let second = cursor.number(2) else { return nil }
                    result.second = second
                    if cursor.skip(".") {
                        guard let nanos = Digits.fraction(cursor.takeDigits()) else { return nil }
                        result.nanos = nanos
                    }
                } else if requireSeconds {
                    return nil
                }
            } else if requireSeconds {
                return nil
            }
        } else if requireSeconds {
            return nil
        }
        if cursor.skip("Z") || cursor.skip("z") {
            result.offsetSeconds = 0
        } else if let sign = cursor.peek, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            cursor.advance()
            guard let hours = cursor.number(2) else { return nil }
            _ = cursor.skip(":")
            guard let minutes = cursor.number(2), hours < 24, minutes < 60 else { return nil }
            let offset = hours * 3600 + minutes * 60
            result.offsetSeconds = sign == UInt8(ascii: "-") ? -offset : offset
        } else if requireSeconds {
            return nil
        }
        guard cursor.atEnd, result.isValid else { return nil }
        return result
    }

    private var isValid: Bool {
        (1...12).contains(month) && day >= 1 && day <= CivilDate.daysInMonth(year: year, month: month)
            && (0...23).contains(hour) && (0...59).contains(minute) && (0...59).contains(second)
    }

    /// Nanoseconds since the epoch, using `localOffset` when the text named no zone; nil when
    /// the instant does not fit in 64 bits.
    func utcNanos(localOffset: Int64?) -> Int64? {
        let offset = offsetSeconds ?? localOffset ?? 0
        let days = CivilDate.days(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return nil }
        let (sum, overflow2) = scaled.addingReportingOverflow(nanos)
        return overflow2 ? nil : sum
    }

    private struct Cursor {
        let bytes: ArraySlice<UInt8>
        var index: Int

        init(bytes: ArraySlice<UInt8>) {
            self.bytes = bytes
            index = bytes.startIndex
        }

        var atEnd: Bool { index == bytes.endIndex }
        var peek: UInt8? { atEnd ? nil : bytes[index] }
        mutating func advance() { index += 1 }

        mutating func skip(_ character: Unicode.Scalar) -> Bool {
            guard peek == UInt8(ascii: character) else { return false }
            index += 1
            return true
        }

        /// Exactly `count` digits.
        mutating func number(_ count: Int) -> Int64? {
            guard bytes.endIndex - index >= count, let value = Digits.value(bytes[index..<(index + count)])
            else { return nil }
            index += count
            return value
        }

        mutating func takeDigits() -> ArraySlice<UInt8> {
            let start = index
            while let byte = peek, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
            return bytes[start..<index]
        }
    }
}

/// Go's `time.ParseDuration` syntax: `[-+]?(NUMBER UNIT)+` with units ns, us (µs, μs), ms, s, m, h
/// and decimal numbers (`1.5h`); `0` alone is also a duration.
/// Go's duration syntax ("1m30s", "500ms"), as Docker's flags take it.
public enum GoDuration {
    /// The duration in nanoseconds, or nil if `text` is not one.
    public static func nanoseconds(_ text: String) -> Int64? { parse(Array(text.utf8)[...]) }

    private static let units: [(String, Int64)] = [
        ("ns", 1), ("us", 1_000), ("µs", 1_000), ("μs", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000),
        ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    /// The duration in nanoseconds, or nil if `text` is not one (or overflows).
    static func parse(_ text: ArraySlice<UInt8>) -> Int64? {
        var rest = text
        var negative = false
        if let sign = rest.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") {
            negative = sign == UInt8(ascii: "-")
            rest = rest.dropFirst()
        }
        if rest.elementsEqual("0".utf8) { return 0 }
        guard !rest.isEmpty else { return nil }
        var total: Int64 = 0
        while !rest.isEmpty {
            let wholeDigits = rest.prefix { isDigit($0) }
            rest = rest.dropFirst(wholeDigits.count)
            var fractionDigits: ArraySlice<UInt8> = []
            if rest.first == UInt8(ascii: ".") {
                rest = rest.dropFirst()
                fractionDigits = rest.prefix { isDigit($0) }
                rest = rest.dropFirst(fractionDigits.count)
            }
            guard !wholeDigits.isEmpty || !fractionDigits.isEmpty else { return nil }
            let unitText = rest.prefix { !isDigit($0) && $0 != UInt8(ascii: ".") }
            rest = rest.dropFirst(unitText.count)
            guard let unit = units.first(where: { unitText.elementsEqual($0.0.utf8) })?.1 else { return nil }
            let whole = wholeDigits.isEmpty ? 0 : Digits.value(wholeDigits)
            guard let whole else { return nil }
            let (wholeNanos, overflow) = whole.multipliedReportingOverflow(by: unit)
            guard !overflow else { return nil }
            var fractionNanos: Int64 = 0
            if !fractionDigits.isEmpty {
                var scale = 1.0
                var value = 0.0
                for digit in fractionDigits.prefix(18) {
                    scale *= 10
                    value = value * 10 + Double(digit - UInt8(ascii: "0"))
                }
                fractionNanos = Int64((value / scale * Double(unit)).rounded(.down))
            }
            let (sum, overflow2) = total.addingReportingOverflow(wholeNanos)
            let (sum2, overflow3) = sum.addingReportingOverflow(fractionNanos)
            guard !overflow2, !overflow3 else { return nil }
            total = sum2
        }
        return negative ? -total : total
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}
