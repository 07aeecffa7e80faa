import AtollCore
import Foundation

/// An image configuration: the OCI image config with Docker's extensions (`Healthcheck`, `OnBuild`,
/// `Shell`, …). Every optional field decodes from a missing key and from `null` alike; encoding leaves
/// nil fields out. Members Atoll does not model (Docker's `container_config`, `docker_version`) are
/// dropped, so keep the original bytes of configs you did not create: their digest is the image ID.
public struct ImageConfig: Sendable, Codable, Equatable, Hashable {
    /// When the image was created, as written (RFC 3339); see `createdDate`.
    public var created: String?
    public var author: String?
    public var architecture: String
    public var os: String
    public var variant: String?
    public var osVersion: String?
    public var osFeatures: [String]?
    /// The defaults for containers run from the image.
    public var config: Config?
    public var rootfs: RootFS
    public var history: [History]?
    /// Docker's free-text commit message.
    public var comment: String?

    public init(
        created: String? = nil, author: String? = nil, architecture: String, os: String,
        variant: String? = nil, osVersion: String? = nil, osFeatures: [String]? = nil,
        config: Config? = nil, rootfs: RootFS, history: [History]? = nil, comment: String? = nil
    ) {
        self.created = created
        self.author = author
        self.architecture = architecture
        self.os = os
        self.variant = variant
        self.osVersion = osVersion
        self.osFeatures = osFeatures
        self.config = config
        self.rootfs = rootfs
        self.history = history
        self.comment = comment
    }

    enum CodingKeys: String, CodingKey {
        case created, author, architecture, os, variant, config, rootfs, history, comment
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    /// Decodes leniently: `architecture` and `os` default to "" when absent; `rootfs` is required.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        created = try c.decodeIfPresent(String.self, forKey: .created)
        author = try c.decodeIfPresent(String.self, forKey: .author)
        architecture = try c.decodeIfPresent(String.self, forKey: .architecture) ?? ""
        os = try c.decodeIfPresent(String.self, forKey: .os) ?? ""
        variant = try c.decodeIfPresent(String.self, forKey: .variant)
        osVersion = try c.decodeIfPresent(String.self, forKey: .osVersion)
        osFeatures = try c.decodeIfPresent([String].self, forKey: .osFeatures)
        config = try c.decodeIfPresent(Config.self, forKey: .config)
        rootfs = try c.decode(RootFS.self, forKey: .rootfs)
        history = try c.decodeIfPresent([History].self, forKey: .history)
        comment = try c.decodeIfPresent(String.self, forKey: .comment)
    }

    /// Decodes a config blob, with an error that names what was wrong.
    public static func parse(data: [UInt8]) throws -> ImageConfig {
        try CanonicalJSON.decode(ImageConfig.self, from: data, what: "image config")
    }

    /// Atoll's canonical encoding (sorted keys, no nulls), stable for digests.
    public func canonicalJSON() throws -> [UInt8] {
        try CanonicalJSON.encode(self, what: "image config")
    }

    /// `created` as a date, or nil when it is absent or not RFC 3339.
    public var createdDate: Date? { created.flatMap(RFC3339.parse) }

    /// The platform the config declares.
    public var platform: Platform {
        Platform(architecture: architecture, os: os, variant: variant, osVersion: osVersion, osFeatures: osFeatures)
    }

    /// The run-time defaults, under Docker's capitalised keys.
    public struct Config: Sendable, Codable, Equatable, Hashable {
        public var user: String?
        /// Keys are `port/protocol`: `80/tcp`, `53/udp`.
        public var exposedPorts: [String: EmptyObject]?
        /// `NAME=value` entries.
        public var env: [String]?
        public var entrypoint: [String]?
        public var cmd: [String]?
        public var volumes: [String: EmptyObject]?
        public var workingDir: String?
        public var labels: [String: String]?
        public var stopSignal: String?
        public var argsEscaped: Bool?
        public var healthcheck: Healthcheck?
        public var onBuild: [String]?
        public var shell: [String]?

        public init(
            user: String? = nil, exposedPorts: [String: EmptyObject]? = nil, env: [String]? = nil,
            entrypoint: [String]? = nil, cmd: [String]? = nil, volumes: [String: EmptyObject]? = nil,
            workingDir: String? = nil, labels: [String: String]? = nil, stopSignal: String? = nil,
            argsEscaped: Bool? = nil, healthcheck: Healthcheck? = nil, onBuild: [String]? = nil,
            shell: [String]? = nil
        ) {
            self.user = user
            self.exposedPorts = exposedPorts
            self.env = env
            self.entrypoint = entrypoint
            self.cmd = cmd
            self.volumes = volumes
            self.workingDir = workingDir
            self.labels = labels
            self.stopSignal = stopSignal
            self.argsEscaped = argsEscaped
            self.healthcheck = healthcheck
            self.onBuild = onBuild
            self.shell = shell
        }

        enum CodingKeys: String, CodingKey {
            case user = "User"
            case exposedPorts = "ExposedPorts"
            case env = "Env"
            case entrypoint = "Entrypoint"
            case cmd = "Cmd"
            case volumes = "Volumes"
            case workingDir = "WorkingDir"
            case labels = "Labels"
            case stopSignal = "StopSignal"
            case argsEscaped = "ArgsEscaped"
            case healthcheck = "Healthcheck"
            case onBuild = "OnBuild"
            case shell = "Shell"
        }
    }

    /// Docker's health check. Durations are in nanoseconds, as Docker writes them.
    public struct Healthcheck: Sendable, Codable, Equatable, Hashable {
        /// `[]` inherits, `["NONE"]` disables, `["CMD", args…]` or `["CMD-SHELL", command]` runs.
        public var test: [String]?
        public var interval: Int64?
        public var timeout: Int64?
        public var startPeriod: Int64?
        public var startInterval: Int64?
        public var retries: Int?

        public init(
            test: [String]? = nil, interval: Int64? = nil, timeout: Int64? = nil,
            startPeriod: Int64? = nil, startInterval: Int64? = nil, retries: Int? = nil
        ) {
            self.test = test
            self.interval = interval
            self.timeout = timeout
            self.startPeriod = startPeriod
            self.startInterval = startInterval
            self.retries = retries
        }

        enum CodingKeys: String, CodingKey {
            case test = "Test"
            case interval = "Interval"
            case timeout = "Timeout"
            case startPeriod = "StartPeriod"
            case startInterval = "StartInterval"
            case retries = "Retries"
        }
    }

    /// The layers' uncompressed digests, bottom first.
    public struct RootFS: Sendable, Codable, Equatable, Hashable {
        /// Always `layers`.
        public var type: String
        public var diffIDs: [Digest]

        public init(type: String = "layers", diffIDs: [Digest]) {
            self.type = type
            self.diffIDs = diffIDs
        }

        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            type = try c.decodeIfPresent(String.self, forKey: .type) ?? ""
            diffIDs = try c.decodeIfPresent([Digest].self, forKey: .diffIDs) ?? []
        }
    }

    /// One step of the image's history; `emptyLayer` steps added no layer.
    public struct History: Sendable, Codable, Equatable, Hashable {
        public var created: String?
        public var createdBy: String?
        public var author: String?
        public var comment: String?
        public var emptyLayer: Bool?

        public init(
            created: String? = nil, createdBy: String? = nil, author: String? = nil,
            comment: String? = nil, emptyLayer: Bool? = nil
        ) {
            self.created = created
            self.createdBy = createdBy
            self.author = author
            self.comment = comment
            self.emptyLayer = emptyLayer
        }

        enum CodingKeys: String, CodingKey {
            case created, author, comment
            case createdBy = "created_by"
            case emptyLayer = "empty_layer"
        }

        /// `created` as a date, or nil when it is absent or not RFC 3339.
        public var createdDate: Date? { created.flatMap(RFC3339.parse) }
    }
}

/// RFC 3339 timestamps as Go writes them (`2024-01-26T23:44:25.6342322Z`, `…+02:00`), with any
/// number of fractional digits.
public enum RFC3339 {
    /// Parses a timestamp, or returns nil when it is not RFC 3339.
    public static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        var i = 0
        func number(_ width: Int) -> Int? {
            guard i + width <= b.count else { return nil }
            var n = 0
            for k in i..<(i + width) {
                guard b[k] >= 0x30 && b[k] <= 0x39 else { return nil }
                n = n * 10 + Int(b[k] - 0x30)
            }
            i += width
            return n
        }
        func expect(_ chars: String) -> Bool {
            guard i < b.count, chars.utf8.contains(b[i]) else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
            expect("Tt "), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
            let second = number(2)
        else { return nil }
        var fraction = 0.0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 {
                fraction += Double(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        var offset = 0
        if expect("Zz") {
            offset = 0
        } else if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = number(2), expect(":"), let om = number(2), oh < 24, om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == b.count, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
            hour < 24, minute < 60, second < 61
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar.
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }
}
