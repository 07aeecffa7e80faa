import AtollCore
import Foundation

/// One `docker import --change` / `docker commit --change` instruction: a Dockerfile line that edits
/// an image's run-time defaults. Arguments are read as Docker reads them: CMD, ENTRYPOINT and
/// VOLUME take a JSON array or a shell form; ENV and LABEL take `k=v` pairs (quotes and backslash
/// escapes removed) or the legacy `ENV K some value`; `$VAR`, `${VAR}`, `${VAR:-default}` and
/// `${VAR:+alternative}` expand from the config's current `Env` in ENV, LABEL, EXPOSE, USER,
/// VOLUME, WORKDIR and STOPSIGNAL.
public enum ConfigChange: Sendable, Equatable, Hashable {
    case cmd(Command)
    case entrypoint(Command)
    case env([KeyValue])
    /// Normalised port keys: `80/tcp`, `53/udp` (ranges expanded).
    case expose([String])
    case label([KeyValue])
    case user(String)
    case volume([String])
    case workdir(String)
    case stopSignal(String)
    /// The trigger instruction, as written.
    case onBuild(String)
    case healthcheck(ImageConfig.Healthcheck)

    /// A command in exec form (a JSON array) or shell form (run through the config's shell).
    public enum Command: Sendable, Equatable, Hashable {
        case exec([String])
        case shell(String)

        /// The argument vector, running shell forms through `shell` (default `/bin/sh -c`).
        public func arguments(shell: [String]?) -> [String] {
            switch self {
            case .exec(let args): return args
            case .shell(let line):
                let sh = shell.flatMap { $0.isEmpty ? nil : $0 } ?? ["/bin/sh", "-c"]
                return sh + [line]
            }
        }
    }

    public struct KeyValue: Sendable, Equatable, Hashable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    /// The instructions `--change` accepts, as Docker lists them.
    public static let allowedInstructions = [
        "CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
        "VOLUME", "WORKDIR",
    ]

    /// Parses one instruction. `environment` (`K=V` entries) feeds variable expansion.
    public static func parse(_ line: String, environment: [String] = []) throws -> ConfigChange {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        let keyword = String(trimmed.prefix { !$0.isWhitespace })
        let rest = trimmed.dropFirst(keyword.count).trimmingCharacters(in: .whitespacesAndNewlines)
        let instruction = keyword.uppercased()
        func fail(_ why: String) -> AtollError {
            AtollError.invalidArgument("invalid change \"\(line)\": \(why)")
        }
        guard allowedInstructions.contains(instruction) else {
            let shown = keyword.isEmpty ? "empty instruction" : "unknown instruction \"\(keyword)\""
            throw AtollError.invalidArgument(
                "invalid change \"\(line)\": \(shown); allowed are \(allowedInstructions.joined(separator: ", "))")
        }
        guard !rest.isEmpty else { throw fail("\(instruction) requires at least one argument") }
        let words = ShellWords(environment: environment, fail: fail)

        switch instruction {
        case "CMD":
            return .cmd(command(rest))
        case "ENTRYPOINT":
            return .entrypoint(command(rest))
        case "ENV":
            return .env(try keyValues(rest, instruction: instruction, words: words, fail: fail))
        case "LABEL":
            return .label(try keyValues(rest, instruction: instruction, words: words, fail: fail))
        case "EXPOSE":
            var ports: [String] = []
            for word in try ShellWords.split(rest, fail: fail) {
                ports += try exposedPorts(try words.process(word), fail: fail)
            }
            return .expose(ports)
        case "USER":
            return .user(try words.process(rest))
        case "WORKDIR":
            return .workdir(try words.process(rest))
        case "STOPSIGNAL":
            let signal = try words.process(rest)
            guard isValidSignal(signal) else { throw fail("unknown signal \"\(signal)\"") }
            return .stopSignal(signal)
        case "VOLUME":
            let raw = try jsonArray(rest) ?? ShellWords.split(rest, fail: fail)
            var volumes: [String] = []
            for item in raw {
                let path = try words.process(item).trimmingCharacters(in: .whitespaces)
                guard !path.isEmpty else { throw fail("VOLUME cannot be an empty string") }
                volumes.append(path)
            }
            return .volume(volumes)
        case "ONBUILD":
            let trigger = String(rest.prefix { !$0.isWhitespace }).uppercased()
            if trigger == "ONBUILD" { throw fail("chaining ONBUILD via ONBUILD ONBUILD is not allowed") }
            if trigger == "FROM" || trigger == "MAINTAINER" {
                throw fail("\(trigger) is not allowed as an ONBUILD trigger")
            }
            return .onBuild(rest)
        case "HEALTHCHECK":
            return .healthcheck(try healthcheck(rest, fail: fail))
        default:
            throw fail("unknown instruction \"\(keyword)\"")
        }
    }

    /// Applies the instructions in order to a config, as `docker import --change` does. ENTRYPOINT
    /// clears `Cmd` unless an earlier CMD in the same list set it.
    public static func apply(_ lines: [String], to config: ImageConfig.Config) throws -> ImageConfig.Config {
        var config = config
        var cmdSet = false
        for line in lines {
            let change = try parse(line, environment: config.env ?? [])
            change.apply(to: &config, cmdSet: cmdSet)
            if case .cmd = change { cmdSet = true }
        }
        return config
    }

    /// Applies this change to a config. `cmdSet` says whether a CMD came earlier in the same batch
    /// (an ENTRYPOINT then keeps it).
    public func apply(to config: inout ImageConfig.Config, cmdSet: Bool = false) {
        switch self {
        case .cmd(let command):
            config.cmd = command.arguments(shell: config.shell)
        case .entrypoint(let command):
            config.entrypoint = command.arguments(shell: config.shell)
            if !cmdSet { config.cmd = nil }
        case .env(let pairs):
            var env = config.env ?? []
            for pair in pairs {
                let entry = "\(pair.key)=\(pair.value)"
                if let i = env.firstIndex(where: { $0 == pair.key || $0.hasPrefix(pair.key + "=") }) {
                    env[i] = entry
                } else {
                    env.append(entry)
                }
            }
            config.env = env
        case .expose(let ports):
            var exposed = config.exposedPorts ?? [:]
            for port in ports { exposed[port] = EmptyObject() }
            config.exposedPorts = exposed
        case .label(let pairs):
            var labels = config.labels ?? [:]
            for pair in pairs { labels[pair.key] = pair.value }
            config.labels = labels
        case .user(let user):
            config.user = user
        case .volume(let paths):
            var volumes = config.volumes ?? [:]
            for path in paths { volumes[path] = EmptyObject() }
            config.volumes = volumes
        case .workdir(let dir):
            config.workingDir = ConfigChange.normalizeWorkdir(current: config.workingDir ?? "", requested: dir)
        case .stopSignal(let signal):
            config.stopSignal = signal
        case .onBuild(let trigger):
            config.onBuild = (config.onBuild ?? []) + [trigger]
        case .healthcheck(let check):
            config.healthcheck = check
        }
    }

    // MARK: argument forms

    private static func jsonArray(_ text: String) -> [String]? {
        guard text.hasPrefix("[") else { return nil }
        return try? JSONDecoder().decode([String].self, from: Data(text.utf8))
    }

    private static func command(_ text: String) -> Command {
        if let args = jsonArray(text) { return .exec(args) }
        return .shell(text)
    }

    private static func keyValues(
        _ rest: String, instruction: String, words: ShellWords, fail: (String) -> AtollError
    ) throws -> [KeyValue] {
        let raw = try ShellWords.split(rest, fail: fail)
        guard let first = raw.first else { throw fail("\(instruction) requires at least one argument") }
        if !first.contains("=") {
            // Legacy form: `ENV KEY value with spaces`.
            let value = rest.drop { !$0.isWhitespace }.trimmingCharacters(in: .whitespaces)
            guard !value.isEmpty else { throw fail("\(instruction) must have two arguments") }
            return [KeyValue(try words.process(first), try words.process(value))]
        }
        var pairs: [KeyValue] = []
        for word in raw {
            guard word.contains("=") else {
                throw fail("syntax error: can't find = in \"\(word)\"; must be of the form name=value")
            }
            let processed = try words.process(word)
            let parts = processed.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            guard !key.isEmpty else { throw fail("\(instruction) names cannot be empty") }
            pairs.append(KeyValue(key, parts.count > 1 ? String(parts[1]) : ""))
        }
        return pairs
    }

    /// `80`, `80/tcp`, `53/udp`, `8000-8002/tcp`, and Docker's `ip:hostPort:containerPort` forms
    /// (only the container port counts).
    private static func exposedPorts(_ spec: String, fail: (String) -> AtollError) throws -> [String] {
        var portPart = Substring(spec)
        var proto = "tcp"
        if let slash = spec.lastIndex(of: "/") {
            proto = spec[spec.index(after: slash)...].lowercased()
            portPart = spec[..<slash]
        }
        if let colon = portPart.lastIndex(of: ":") { portPart = portPart[portPart.index(after: colon)...] }
        guard ["tcp", "udp", "sctp"].contains(proto) else { throw fail("invalid protocol \"\(proto)\" in \"\(spec)\"") }
        func port(_ s: Substring) throws -> Int {
            guard !s.isEmpty, s.allSatisfy(\.isASCII), let n = Int(s), (0...65535).contains(n) else {
                throw fail("invalid port \"\(s)\" in \"\(spec)\"")
            }
            return n
        }
        let bounds = portPart.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        let low = try port(bounds[0])
        let high = try bounds.count > 1 ? port(bounds[1]) : low
        guard low <= high else { throw fail("invalid port range \"\(portPart)\" in \"\(spec)\"") }
        return (low...high).map { "\($0)/\(proto)" }
    }

    private static let signalNames: Set<String> = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
        "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
        "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
    ]

    private static func isValidSignal(_ text: String) -> Bool {
        if let n = Int(text) { return n > 0 && n <= 64 }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if signalNames.contains(name) { return true }
        for base in ["RTMIN+", "RTMAX-"] where name.hasPrefix(base) {
            if let n = Int(name.dropFirst(base.count)), (1...15).contains(n) { return true }
        }
        return false
    }

    private static func normalizeWorkdir(current: String, requested: String) -> String {
        let joined = requested.hasPrefix("/") ? requested : "/\(current)/\(requested)"
        var parts: [Substring] = []
        for part in joined.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                _ = parts.popLast()
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    private static func healthcheck(_ rest: String, fail: (String) -> AtollError) throws -> ImageConfig.Healthcheck {
        var check = ImageConfig.Healthcheck()
        var remainder = Substring(rest)
        while remainder.hasPrefix("--") {
            let flag = remainder.prefix { !$0.isWhitespace }
            remainder = remainder.dropFirst(flag.count).drop { $0.isWhitespace }
            let parts = flag.dropFirst(2).split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw fail("HEALTHCHECK flag \"\(flag)\" needs a value (--name=value)") }
            let value = String(parts[1])
            func duration() throws -> Int64? {
                guard let ns = GoDuration.parse(value) else {
                    throw fail("invalid duration \"\(value)\" for --\(parts[0])")
                }
                if ns == 0 { return nil }
                guard ns >= 1_000_000 else { throw fail("--\(parts[0]) cannot be less than 1ms") }
                return ns
            }
            switch parts[0] {
            case "interval": check.interval = try duration()
            case "timeout": check.timeout = try duration()
            case "start-period": check.startPeriod = try duration()
            case "start-interval": check.startInterval = try duration()
            case "retries":
                guard let n = Int(value), n >= 0 else { throw fail("invalid --retries \"\(value)\"") }
                check.retries = n == 0 ? nil : n
            default:
                throw fail("unknown HEALTHCHECK flag \"--\(parts[0])\"")
            }
        }
        let kind = String(remainder.prefix { !$0.isWhitespace }).uppercased()
        let args = remainder.dropFirst(kind.count).trimmingCharacters(in: .whitespaces)
        switch kind {
        case "NONE":
            guard args.isEmpty else { throw fail("HEALTHCHECK NONE takes no arguments") }
            guard check == ImageConfig.Healthcheck() else { throw fail("HEALTHCHECK NONE takes no flags") }
            check.test = ["NONE"]
        case "CMD":
            guard !args.isEmpty else { throw fail("missing command after HEALTHCHECK CMD") }
            switch command(args) {
            case .exec(let argv): check.test = ["CMD"] + argv
            case .shell(let line): check.test = ["CMD-SHELL", line]
            }
        default:
            throw fail("unknown type \"\(kind)\" in HEALTHCHECK (try CMD)")
        }
        return check
    }
}

/// Go's `time.ParseDuration` (`1h30m`, `500ms`, `1.5s`), in nanoseconds.
enum GoDuration {
    static func parse(_ text: String) -> Int64? {
        if text == "0" { return 0 }
        let units: [(String, Double)] = [
            ("ns", 1), ("us", 1e3), ("µs", 1e3), ("μs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9),
        ]
        var s = Substring(text)
        guard !s.isEmpty else { return nil }
        var total = 0.0
        while !s.isEmpty {
            let number = s.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, number != ".", let value = Double(number) else { return nil }
            s = s.dropFirst(number.count)
            let unit = s.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            guard let scale = units.first(where: { $0.0 == unit })?.1 else { return nil }
            s = s.dropFirst(unit.count)
            total += value * scale
        }
        guard total < Double(Int64.max) else { return nil }
        return Int64(total.rounded())
    }
}

/// Docker's word handling for Dockerfile arguments: splitting on blanks outside quotes, then quote
/// removal, backslash escapes and `$VAR` expansion.
struct ShellWords {
    let environment: [String]
    let fail: (String) -> AtollError

    /// Splits on blanks outside quotes, keeping quotes and escapes in the words.
    static func split(_ text: String, fail: (String) -> AtollError) throws -> [String] {
        var words: [String] = []
        var word = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for c in text {
            if escaped {
                word.append(c)
                escaped = false
                continue
            }
            if let q = quote {
                word.append(c)
                if c == "\\" && q == "\"" { escaped = true } else if c == q { quote = nil }
                continue
            }
            if c.isWhitespace {
                if inWord { words.append(word) }
                word = ""
                inWord = false
                continue
            }
            inWord = true
            word.append(c)
            if c == "\\" { escaped = true } else if c == "\"" || c == "'" { quote = c }
        }
        if inWord { words.append(word) }
        return words
    }

    /// Removes quotes, resolves escapes and expands variables in one word.
    func process(_ word: String) throws -> String {
        let chars = Array(word)
        var out = ""
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "'":
                guard let end = chars[(i + 1)...].firstIndex(of: "'") else {
                    throw fail("unexpected end of statement while looking for matching single-quote")
                }
                out += String(chars[(i + 1)..<end])
                i = end + 1
            case "\"":
                i += 1
                var closed = false
                while i < chars.count {
                    let d = chars[i]
                    if d == "\"" {
                        closed = true
                        i += 1
                        break
                    } else if d == "\\" {
                        if i + 1 < chars.count, ["\"", "$", "\\"].contains(chars[i + 1]) {
                            out.append(chars[i + 1])
                            i += 2
                        } else {
                            out.append(d)
                            i += 1
                        }
                    } else if d == "$" {
                        out += try expand(chars, &i)
                    } else {
                        out.append(d)
                        i += 1
                    }
                }
                guard closed else { throw fail("unexpected end of statement while looking for matching double-quote") }
            case "\\":
                if i + 1 < chars.count { out.append(chars[i + 1]) }
                i += 2
            case "$":
                out += try expand(chars, &i)
            default:
                out.append(c)
                i += 1
            }
        }
        return out
    }

    private func lookup(_ name: String) -> String? {
        for entry in environment.reversed() {
            if entry == name { return "" }
            if entry.hasPrefix(name + "=") { return String(entry.dropFirst(name.count + 1)) }
        }
        return nil
    }

    private static func isNameStart(_ c: Character) -> Bool { c == "_" || (c.isASCII && c.isLetter) }
    private static func isName(_ c: Character) -> Bool { isNameStart(c) || (c.isASCII && c.isNumber) }

    /// Expands the `$` at `chars[i]`, advancing `i` past the expression.
    private func expand(_ chars: [Character], _ i: inout Int) throws -> String {
        let start = i + 1
        guard start < chars.count else {
            i = start
            return "$"
        }
        if chars[start] == "{" {
            guard let close = chars[start...].firstIndex(of: "}") else {
                throw fail("missing '}' in variable expansion")
            }
            let body = chars[(start + 1)..<close]
            i = close + 1
            let name = String(body.prefix(while: ShellWords.isName))
            guard !name.isEmpty, name.first.map(ShellWords.isNameStart) == true else {
                throw fail("bad substitution \"${\(String(body))}\"")
            }
            let op = String(body.dropFirst(name.count))
            let value = lookup(name)
            if op.isEmpty { return value ?? "" }
            let modifiers = [":-", ":+", "-", "+"]
            guard let modifier = modifiers.first(where: { op.hasPrefix($0) }) else {
                throw fail("unsupported modifier in \"${\(String(body))}\"")
            }
            let word = try process(String(op.dropFirst(modifier.count)))
            switch modifier {
            case ":-": return (value ?? "").isEmpty ? word : (value ?? "")
            case "-": return value ?? word
            case ":+": return (value ?? "").isEmpty ? "" : word
            default: return value == nil ? "" : word
            }
        }
        guard ShellWords.isNameStart(chars[start]) else {
            i = start
            return "$"
        }
        var end = start
        while end < chars.count, ShellWords.isName(chars[end]) { end += 1 }
        i = end
        return lookup(String(chars[start..<end])) ?? ""
    }
}
