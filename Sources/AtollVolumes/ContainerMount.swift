import AtollCore
import Foundation

/// One mount of a container, as `-v`, `--mount`, `--tmpfs`, `--volumes-from` or an image's
/// VOLUME asked for it, with the target already cleaned. Volume sources are names (anonymous
/// volumes get theirs when the container is created); bind sources are host paths.
public struct ContainerMount: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case volume, bind, tmpfs }

    public var kind: Kind
    /// The volume's name ("" until an anonymous volume is made), the host path, or "" for tmpfs.
    public var source: String
    /// An absolute, clean path inside the container, never "/".
    public var target: String
    public var readOnly = false
    /// `volume-nocopy` / `:nocopy`: do not fill a new volume with the image's content.
    public var noCopy = false
    /// Bind propagation (private, rprivate, shared, rshared, slave, rslave); "" is rprivate.
    public var propagation = ""
    /// `bind-nonrecursive`: mounts below the source are not carried along.
    public var nonRecursive = false
    /// `-v /host:/path` makes a missing host directory, as Docker does; `--mount` refuses it.
    public var createSource = false
    /// tmpfs mount options (size=, mode=, noexec…).
    public var tmpfsOptions: [String] = []
    /// For a volume this mount creates: its labels and driver options (`--mount volume-label=,volume-opt=`).
    public var volumeLabels: [String: String] = [:]
    public var volumeOptions: [String: String] = [:]

    public init(kind: Kind, source: String, target: String) {
        self.kind = kind
        self.source = source
        self.target = target
    }

    /// Docker's `Mode` field: the flags as given (ro/rw, propagation, nocopy).
    public var mode: String {
        var parts: [String] = []
        if readOnly { parts.append("ro") }
        if noCopy { parts.append("nocopy") }
        if kind == .bind, !propagation.isEmpty { parts.append(propagation) }
        return parts.joined(separator: ",")
    }

    public var effectivePropagation: String { kind == .bind && !propagation.isEmpty ? propagation : "rprivate" }
}

/// Parses the mount flags of `create`/`run`. Everything is checked before anything is made, and
/// each error names the flag value and what is wrong with it.
public enum MountParser {
    static let propagations: Set<String> = ["private", "rprivate", "shared", "rshared", "slave", "rslave"]
    /// Options `--tmpfs` accepts besides size=, mode=, uid=, gid=, nr_inodes= and nr_blocks=.
    static let tmpfsFlags: Set<String> = [
        "rw", "ro", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "diratime", "nodiratime",
        "relatime", "norelatime", "strictatime", "nostrictatime", "sync", "async", "dirsync", "mand", "nomand",
    ]
    static let tmpfsValues: Set<String> = ["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"]

    /// `-v [SOURCE:]TARGET[:MODE]`: SOURCE is a volume name or an absolute host path; without
    /// it, an anonymous volume. MODE: ro|rw, z|Z (accepted; no SELinux here), nocopy (volumes),
    /// a propagation (binds).
    public static func volumeFlag(_ spec: String) throws -> ContainerMount {
        let fail = { (why: String) in AtollError.invalidArgument("invalid volume specification \"\(spec)\": \(why)") }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var mount: ContainerMount
        var modes: [String] = []
        switch parts.count {
        case 1:
            mount = ContainerMount(kind: .volume, source: "", target: try cleanTarget(parts[0], spec: spec))
        case 2, 3:
            let source = parts[0]
            guard !source.isEmpty else { throw fail("the source is empty") }
            let target = try cleanTarget(parts[1], spec: spec)
            if source.hasPrefix("/") {
                mount = ContainerMount(kind: .bind, source: cleanHostPath(source), target: target)
                mount.createSource = true
            } else {
                do { try VolumeName.validate(source) } catch let error as AtollError {
                    throw fail(
                        "\(error.message) (a bind mount's source must be an absolute path)")
                }
                mount = ContainerMount(kind: .volume, source: source, target: target)
            }
            if parts.count == 3 {
                modes = parts[2].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            }
        default:
            throw fail("want [SOURCE:]TARGET[:MODE]")
        }
        var sawAccess = false
        for mode in modes {
            switch mode {
            case "ro", "rw":
                if sawAccess { throw fail("give only one of ro and rw") }
                sawAccess = true
                mount.readOnly = mode == "ro"
            case "z", "Z":
                continue
            case "nocopy":
                guard mount.kind == .volume else { throw fail("nocopy applies to volumes, not bind mounts") }
                mount.noCopy = true
            case _ where propagations.contains(mode):
                guard mount.kind == .bind else { throw fail("propagation \(mode) applies to bind mounts only") }
                guard mount.propagation.isEmpty else { throw fail("give only one propagation") }
                mount.propagation = mode
            default:
                throw fail("unknown mode \"\(mode)\" (want ro, rw, z, Z, nocopy or a propagation)")
            }
        }
        return mount
    }

    /// `--mount type=volume|bind|tmpfs,source=…,target=…,…` (Docker's keys; values with commas
    /// go in double quotes, as in CSV).
    public static func mountFlag(_ spec: String) throws -> ContainerMount {
        let fail = { (why: String) in AtollError.invalidArgument("invalid --mount \"\(spec)\": \(why)") }
        var fields: [(key: String, value: String?)] = []
        for field in try csvFields(spec, fail: fail) where !field.isEmpty {
            let pair = field.split(separator: "=", maxSplits: 1).map(String.init)
            fields.append((pair[0].lowercased(), pair.count == 2 ? pair[1] : nil))
        }
        var kind = ContainerMount.Kind.volume
        if let type = fields.last(where: { $0.key == "type" }) {
            guard let value = type.value, let parsed = ContainerMount.Kind(rawValue: value) else {
                throw fail("unknown type \"\(type.value ?? "")\": want volume, bind or tmpfs")
            }
            kind = parsed
        }
        var mount = ContainerMount(kind: kind, source: "", target: "")
        var target: String?
        func boolean(_ field: (key: String, value: String?)) throws -> Bool {
            switch field.value?.lowercased() {
            case nil, "true", "1": return true
            case "false", "0": return false
            case let other?: throw fail("\(field.key) takes true or false, not \"\(other)\"")
            }
        }
        func value(_ field: (key: String, value: String?)) throws -> String {
            guard let value = field.value, !value.isEmpty else { throw fail("\(field.key) needs a value") }
            return value
        }
        func only(_ wanted: ContainerMount.Kind, _ key: String) throws {
            guard kind == wanted else { throw fail("\(key) applies to type=\(wanted.rawValue) only") }
        }
        for field in fields {
            switch field.key {
            case "type":
                continue
            case "source", "src":
                guard kind != .tmpfs else { throw fail("a tmpfs mount takes no source") }
                mount.source = try value(field)
            case "target", "destination", "dst":
                target = try value(field)
            case "readonly", "ro":
                mount.readOnly = try boolean(field)
            case "consistency":
                continue
            case "volume-nocopy":
                try only(.volume, field.key)
                mount.noCopy = try boolean(field)
            case "volume-driver":
                try only(.volume, field.key)
                let driver = try value(field)
                guard driver == "local" else {
                    throw fail("unknown volume driver \"\(driver)\": this engine has only the local driver")
                }
            case "volume-label":
                try only(.volume, field.key)
                let pair = try value(field).split(separator: "=", maxSplits: 1).map(String.init)
                mount.volumeLabels[pair[0]] = pair.count == 2 ? pair[1] : ""
            case "volume-opt":
                try only(.volume, field.key)
                let pair = try value(field).split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2 else { throw fail("volume-opt wants KEY=VALUE") }
                mount.volumeOptions[pair[0]] = pair[1]
            case "bind-propagation":
                try only(.bind, field.key)
                let propagation = try value(field)
                guard propagations.contains(propagation) else {
                    throw fail(
                        "unknown bind-propagation \"\(propagation)\": want \(propagations.sorted().joined(separator: ", "))"
                    )
                }
                mount.propagation = propagation
            case "bind-nonrecursive":
                try only(.bind, field.key)
                mount.nonRecursive = try boolean(field)
            case "tmpfs-size":
                try only(.tmpfs, field.key)
                guard let bytes = ByteCount.parse(try value(field)), bytes > 0 else {
                    throw fail("tmpfs-size wants a size such as 64m")
                }
                mount.tmpfsOptions.append("size=\(bytes)")
            case "tmpfs-mode":
                try only(.tmpfs, field.key)
                guard let mode = UInt32(try value(field), radix: 8), mode <= 0o7777 else {
                    throw fail("tmpfs-mode wants an octal mode such as 1777")
                }
                mount.tmpfsOptions.append("mode=\(String(mode, radix: 8))")
            default:
                throw fail("unknown key \"\(field.key)\"")
            }
        }
        guard let target else { throw fail("target is required") }
        mount.target = try cleanTarget(target, spec: spec)
        switch kind {
        case .bind:
            guard mount.source.hasPrefix("/") else {
                throw fail("a bind mount's source must be an absolute host path, not \"\(mount.source)\"")
            }
            mount.source = cleanHostPath(mount.source)
            guard FileManager.default.fileExists(atPath: mount.source) else {
                throw fail("bind source path does not exist: \(mount.source)")
            }
        case .volume:
            if !mount.source.isEmpty { try VolumeName.validate(mount.source) }
            if !mount.volumeOptions.isEmpty { _ = try LocalVolumeOptions.parse(mount.volumeOptions) }
        case .tmpfs:
            mount.tmpfsOptions = ["nosuid", "nodev", "noexec"] + mount.tmpfsOptions
        }
        return mount
    }

    /// `--tmpfs TARGET[:OPTIONS]`: a tmpfs with Docker's defaults (noexec, nosuid, nodev) unless
    /// OPTIONS say otherwise.
    public static func tmpfsFlag(_ spec: String) throws -> ContainerMount {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first else {
            throw AtollError.invalidArgument("invalid --tmpfs \"\": want TARGET[:OPTIONS]")
        }
        var mount = ContainerMount(kind: .tmpfs, source: "", target: try cleanTarget(first, spec: spec))
        let given = parts.count == 2 ? parts[1].split(separator: ",").map(String.init) : []
        for option in given {
            let key = option.split(separator: "=", maxSplits: 1).first.map(String.init) ?? option
            if option.contains("=") ? tmpfsValues.contains(key) : tmpfsFlags.contains(key) { continue }
            throw AtollError.invalidArgument("invalid --tmpfs \"\(spec)\": unknown option \"\(option)\"")
        }
        var options = given
        for (flag, opposite) in [("noexec", "exec"), ("nosuid", "suid"), ("nodev", "dev")]
        where !given.contains(flag) && !given.contains(opposite) {
            options.insert(flag, at: 0)
        }
        mount.readOnly = given.contains("ro")
        mount.tmpfsOptions = options.filter { $0 != "ro" && $0 != "rw" }
        return mount
    }

    /// An absolute, clean target that is not the root ("/a/../b" is "/b").
    public static func cleanTarget(_ target: String, spec: String) throws -> String {
        guard target.hasPrefix("/") else {
            throw AtollError.invalidArgument(
                "invalid mount target \"\(target)\" in \"\(spec)\": it must be an absolute path inside the container")
        }
        var components: [Substring] = []
        for component in target.split(separator: "/") {
            if component == "." { continue }
            if component == ".." {
                _ = components.popLast()
                continue
            }
            components.append(component)
        }
        guard !components.isEmpty else {
            throw AtollError.invalidArgument(
                "invalid mount target \"\(target)\" in \"\(spec)\": cannot mount over the container's root \"/\"")
        }
        return "/" + components.joined(separator: "/")
    }

    /// A host path without "." components, doubled or trailing slashes (".." are kept: the host
    /// path is the administrator's to give).
    static func cleanHostPath(_ path: String) -> String {
        "/" + path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }

    /// Splits on commas outside double quotes; quotes are removed.
    static func csvFields(_ text: String, fail: (String) -> AtollError) throws -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        for character in text {
            if character == "\"" {
                quoted.toggle()
            } else if character == ",", !quoted {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        guard !quoted else { throw fail("unbalanced double quote") }
        fields.append(current)
        return fields
    }
}
