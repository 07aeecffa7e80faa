/// One mount that makes (part of) a snapshot appear, in containerd's form: `type` is a file-system
/// type ("overlay", "bind", "tmpfs"), `source` its source, `options` the mount options
/// ("lowerdir=…", "upperdir=…", "workdir=…", "ro", "rbind").
///
/// Mounts are plain data so that they can be stored, sent and compared; `mount(at:)` (in
/// MountOperations.swift) performs them.
public struct Mount: Codable, Sendable, Equatable, Hashable {
    public var type: String
    public var source: String
    public var options: [String]

    public init(type: String, source: String, options: [String]) {
        self.type = type
        self.source = source
        self.options = options
    }

    /// The value of an option `name=value`, if present.
    public func option(_ name: String) -> String? {
        let prefix = name + "="
        return options.first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    /// Whether the mount is read-only.
    public var isReadOnly: Bool { options.contains("ro") }
}
