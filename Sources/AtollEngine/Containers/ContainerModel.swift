import AtollCore
import AtollNetwork
import AtollVolumes
import Foundation
import GRDB

/// What a container was asked to be: the flags of `create`/`run`, kept as given (the image's
/// defaults are merged in when it starts, as Docker does).
public struct ContainerSettings: Codable, Sendable, Equatable {
    public var image = ""
    public var name = ""
    public var cmd: [String] = []
    public var entrypoint: [String]?
    public var env: [String] = []
    public var user = ""
    public var workdir = ""
    public var hostname = ""
    public var tty = false
    public var openStdin = false
    public var readOnly = false
    public var capAdd: [String] = []
    public var capDrop: [String] = []
    public var securityOpt: [String] = []
    public var privileged = false
    public var initProcess = false
    public var memoryBytes: Int64 = 0
    public var nanoCPUs: Int64 = 0
    public var pidsLimit: Int64 = 0
    public var shmSizeBytes: Int64 = 0
    public var ulimits: [String] = []
    public var restartPolicy = RestartPolicy.no
    public var autoRemove = false
    public var runtime = ""
    public var labels: [String: String] = [:]
    public var stopSignal = ""
    public var stopTimeout: Int32 = -1
    /// "bridge", "host", "none" or a network's name or ID (rows from before networking say "none").
    public var network = "none"
    /// Networks joined, ports published, DNS and hosts settings; nil in rows from before networking.
    public var networking: ContainerNetworking?
    public var health: HealthSettings?
    /// Volumes, binds and tmpfs mounts; after `create`, resolved (volumes-from expanded, the
    /// image's VOLUMEs added, anonymous volumes named).
    @EmptyIfMissing public var mounts: [ContainerMount] = []
    /// `--volumes-from CONTAINER[:ro|rw]`, as given.
    @EmptyIfMissing public var volumesFrom: [String] = []

    public init() {}
}

/// A collection field that rows written before it existed lack: decoded as empty.
@propertyWrapper
public struct EmptyIfMissing<Value: Codable & Sendable & Equatable & RangeReplaceableCollection>: Codable, Sendable,
    Equatable
{
    public var wrappedValue: Value

    public init(wrappedValue: Value) { self.wrappedValue = wrappedValue }

    public init(from decoder: any Decoder) throws {
        wrappedValue = try decoder.singleValueContainer().decode(Value.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(wrappedValue)
    }
}

extension KeyedDecodingContainer {
    public func decode<Value>(_ type: EmptyIfMissing<Value>.Type, forKey key: Key) throws -> EmptyIfMissing<Value> {
        try decodeIfPresent(type, forKey: key) ?? EmptyIfMissing(wrappedValue: Value())
    }
}

/// `--health-*` flags; zero values keep the image's (or the default) value.
public struct HealthSettings: Codable, Sendable, Equatable {
    public var test: [String] = []
    public var interval: Int64 = 0
    public var timeout: Int64 = 0
    public var startPeriod: Int64 = 0
    public var retries: Int = 0
    public var disabled = false

    public init() {}
}

/// When a container is restarted after it exits.
public struct RestartPolicy: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Mode: String, Codable, Sendable {
        case no, onFailure = "on-failure", always, unlessStopped = "unless-stopped"
    }
    public var mode: Mode
    /// For on-failure: the most restarts (0: unlimited).
    public var maximumRetries: Int

    public static let no = RestartPolicy(mode: .no, maximumRetries: 0)

    public init(mode: Mode, maximumRetries: Int) {
        self.mode = mode
        self.maximumRetries = maximumRetries
    }

    /// Parses `no | on-failure[:N] | always | unless-stopped`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let mode = Mode(rawValue: first) else {
            if text.isEmpty {
                self = .no
                return
            }
            throw AtollError.invalidArgument(
                "invalid restart policy \"\(text)\": want no, on-failure[:N], always or unless-stopped")
        }
        var retries = 0
        if parts.count == 2 {
            guard mode == .onFailure, let count = Int(parts[1]), count >= 0 else {
                throw AtollError.invalidArgument(
                    "invalid restart policy \"\(text)\": only on-failure takes a count, and it must be a number ≥ 0")
            }
            retries = count
        }
        self.init(mode: mode, maximumRetries: retries)
    }

    public var description: String {
        mode == .onFailure && maximumRetries > 0 ? "on-failure:\(maximumRetries)" : mode.rawValue
    }
}

/// Where a container is in its life. Transitions: created → running ⇄ paused; running →
/// exited (or restarting → running); any → removing → gone. `dead` marks a container whose
/// cleanup failed and needs `rm -f`.
public enum ContainerStatus: String, Codable, Sendable {
    case created, running, paused, restarting, exited, dead, removing

    /// Whether a process may be alive (a monitor to reattach to after a daemon restart).
    public var isActive: Bool { self == .running || self == .paused }
}

/// A health check's latest result.
public struct HealthState: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case starting, healthy, unhealthy }
    public struct Probe: Codable, Sendable, Equatable {
        public var start: Date
        public var end: Date
        public var exitCode: Int32
        public var output: String
    }
    public var status: Status = .starting
    public var failingStreak = 0
    public var log: [Probe] = []
}

/// What a container is doing now.
public struct ContainerState: Codable, Sendable, Equatable {
    public var status: ContainerStatus = .created
    public var pid: Int32 = 0
    public var monitorPid: Int32 = 0
    public var exitCode: Int32 = 0
    public var error = ""
    public var startedAt: Date?
    public var finishedAt: Date?
    public var restartCount = 0
    /// Set by stop/kill from a user, cleared by start: `unless-stopped` and `always` must not
    /// bring back a container someone stopped.
    public var stoppedByUser = false
    public var health: HealthState?
    /// The runtime that runs it now (settings may leave it to the default).
    public var runtime = ""
}

/// One row of the `containers` table.
public struct ContainerRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "containers"

    public var id: String
    public var name: String
    public var imageID: String
    /// Nanoseconds since the epoch.
    public var created: Int64
    public var settings: ContainerSettings
    public var state: ContainerState

    enum CodingKeys: String, CodingKey { case id, name, imageID = "image_id", created, settings, state }

    /// The snapshot holding the container's writable layer.
    public var snapshotKey: String { "container-\(id)" }
}

enum ContainerMigrations {
    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("containers-v1") { db in
            try db.create(table: "containers") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull().unique()
                t.column("image_id", .text).notNull().indexed()
                t.column("created", .integer).notNull()
                t.column("settings", .jsonText).notNull()
                t.column("state", .jsonText).notNull()
            }
        }
    }
}
