import Foundation
import Glibc
import Synchronization

/// Printing helpers: Docker-style tables, sizes, durations and --format templates.
enum Output {
    /// Prints a line; a reader that went away (`atoll ps | head -1`) ends the CLI quietly.
    static func print(_ text: String) {
        write(Data((text + "\n").utf8))
    }

    /// What must be undone if a failed write ends the CLI (a terminal put in raw mode for `-it`).
    static let restoreBeforeExit = Mutex<(@Sendable () -> Void)?>(nil)

    /// Writes bytes as they are (Foundation's `FileHandle.write(_:)` would trap on a failed write).
    /// When standard output's reader went away (EPIPE: SIGPIPE is ignored) the CLI ends quietly,
    /// as `atoll logs web | head -1` should; any other failure there (a full disk under
    /// `atoll volume export v > file`) is an error, exit status 1. Standard error drops what it
    /// cannot show.
    static func write(_ data: Data, to handle: FileHandle = .standardOutput) {
        let toStandardOutput = handle === FileHandle.standardOutput
        let failure: Int32? = data.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return nil }
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(handle.fileDescriptor, base + offset, bytes.count - offset)
                if written >= 0 {
                    offset += written
                } else if errno != EINTR {
                    return errno
                }
            }
            return nil
        }
        guard let failure, toStandardOutput else { return }
        if let restore = restoreBeforeExit.withLock({ $0 }) { restore() }
        if failure == EPIPE { exit(0) }
        let reason = String(cString: strerror(failure))
        _ = try? FileHandle.standardError.write(
            contentsOf: Data("Error: cannot write to standard output: \(reason)\n".utf8))
        exit(1)
    }

    /// Columns padded as Docker's tabwriter pads them (at least three spaces between).
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        for row in all {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += i == row.count - 1 ? cell : cell.padding(toLength: widths[i] + 3, withPad: " ", startingAt: 0)
            }
            print(line)
        }
    }

    /// Bytes in Docker's decimal units with three significant digits: 4.26MB, 1.23kB, 999B.
    static func size(_ bytes: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB", "PB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return String(format: "%.3g", value) + units[unit]
    }

    /// How long ago, as Docker words it: "2 hours ago", "About a minute ago".
    static func since(_ epochSeconds: Int64, now: Date = Date()) -> String {
        guard epochSeconds > 0 else { return "N/A" }
        let seconds = max(0, now.timeIntervalSince1970 - Double(epochSeconds))
        return duration(seconds) + " ago"
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds)
        switch s {
        case ..<1: return "Less than a second"
        case 1: return "1 second"
        case ..<60: return "\(s) seconds"
        case ..<120: return "About a minute"
        case ..<3600: return "\(s / 60) minutes"
        case ..<7200: return "About an hour"
        case ..<(3600 * 48): return "\(s / 3600) hours"
        case ..<(3600 * 24 * 14): return "\(s / 86400) days"
        case ..<(3600 * 24 * 60): return "\(s / 86400 / 7) weeks"
        case ..<(3600 * 24 * 365 * 2): return "\(s / 86400 / 30) months"
        default: return "\(s / 86400 / 365) years"
        }
    }

    static func json(_ value: Any, pretty: Bool = true) -> String {
        let options: JSONSerialization.WritingOptions =
            pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        guard JSONSerialization.isValidJSONObject(value),
            let data = try? JSONSerialization.data(withJSONObject: value, options: options)
        else { return "null" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A `--format` value: "json", "table …" or a Go-template-like string whose `{{.Field}}`
/// placeholders are filled from each row (`{{json .}}` gives the whole row as JSON).
struct RowFormat {
    enum Kind { case table(String), json, template(String) }
    let kind: Kind

    init(_ format: String?) {
        guard let format, !format.isEmpty else {
            kind = .table("")
            return
        }
        if format == "json" {
            kind = .json
        } else if format.hasPrefix("table") {
            kind = .table(String(format.dropFirst(5)).trimmingCharacters(in: .whitespaces))
        } else {
            kind = .template(format)
        }
    }

    /// Renders `rows` (each a field name → value map, `order` giving the default columns).
    func render(_ rows: [[String: String]], columns: [(field: String, header: String)]) {
        switch kind {
        case .json:
            for row in rows { Output.print(Output.json(row, pretty: false)) }
        case .template(let template):
            for row in rows { Output.print(Self.fill(template, row)) }
        case .table(let template) where template.isEmpty:
            Output.table(columns.map(\.header), rows.map { row in columns.map { row[$0.field] ?? "" } })
        case .table(let template):
            let cells = Self.unescape(template).components(separatedBy: "\t")
            let headers = cells.map { cell in
                Self.fill(cell, Dictionary(uniqueKeysWithValues: columns.map { ($0.field, $0.header) }))
            }
            Output.table(headers, rows.map { row in cells.map { Self.fill($0, row) } })
        }
    }

    static func fill(_ template: String, _ row: [String: String]) -> String {
        var result = ""
        var rest = Substring(unescape(template))
        while let open = rest.range(of: "{{") {
            result += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                result += rest[open.lowerBound...]
                return result
            }
            let expression = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            if expression == "json ." {
                result += Output.json(row, pretty: false)
            } else if expression.hasPrefix("json .") {
                // Objects and arrays are held as JSON text already; anything else is quoted.
                let value = row[String(expression.dropFirst(6))] ?? ""
                result +=
                    value.hasPrefix("[") || value.hasPrefix("{")
                    ? value : String(Output.json([value], pretty: false).dropFirst().dropLast())
            } else if expression.hasPrefix(".") {
                result += row[String(expression.dropFirst())] ?? "<no value>"
            }
            rest = rest[close.upperBound...]
        }
        return result + rest
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\t", with: "\t").replacingOccurrences(of: "\\n", with: "\n")
    }
}

extension FileHandle {
    static func standardErrorLine(_ text: String) {
        Output.write(Data((text + "\n").utf8), to: .standardError)
    }
}
