import AtollCore
import CAtollShim
import Foundation
import Glibc

/// How an overlay mount is handed to the kernel.
public enum OverlayMountMethod: Sendable {
    /// The new mount API for every overlay (it reports the kernel's reason for a refusal and has
    /// no size limit on the lower directories), classic mount(2) only where the new API is missing.
    case automatic
    /// mount(2) with the options as one comma-separated data string: limited to one page.
    case classic
    /// fsopen/fsconfig/fsmount/move_mount, one `lowerdir+` per lower directory (kernel ≥ 6.8).
    case mountAPI
}

extension Mount {
    /// The largest data string mount(2) takes: the kernel copies one page, terminator included.
    public static let classicDataLimit = 4095

    /// Performs this mount at `target`, which must be an existing directory.
    ///
    /// Overlays go through the new mount API (see `OverlayMountMethod.automatic`); bind mounts
    /// ("bind" type or a "bind"/"rbind" option) are made with MS_BIND and remounted read-only for
    /// "ro"; anything else (tmpfs, proc…) through mount(2).
    public func mount(at target: String) throws {
        try mount(at: target, overlayMethod: .automatic)
    }

    /// Performs this mount at `target`, choosing how an overlay reaches the kernel.
    public func mount(at target: String, overlayMethod: OverlayMountMethod) throws {
        if isBind {
            try mountBind(at: target)
        } else if type == "overlay" {
            switch overlayMethod {
            case .classic:
                try mountClassic(at: target)
            case .mountAPI:
                try mountWithMountAPI(at: target)
            case .automatic:
                do {
                    try mountWithMountAPI(at: target)
                } catch let error as AtollError where (error.cause as? SystemCallError)?.errno == ENOSYS {
                    try mountClassic(at: target)
                }
            }
        } else {
            try mountClassic(at: target)
        }
    }

    /// Unmounts everything mounted at `target` (mounts stacked there one after another). A busy
    /// mount is detached (MNT_DETACH) so that it goes away once its last user does. Not being a
    /// mount point, or not existing, is not an error.
    public static func unmountAll(at target: String) throws {
        for _ in 0..<256 {
            do {
                try Syscall.unmount(target)
            } catch  where error.errno == EINVAL || error.errno == ENOENT {
                return
            } catch  where error.errno == EBUSY {
                do {
                    try Syscall.unmount(target, flags: Int32(MNT_DETACH))
                } catch {
                    throw mountError("unmount", target: target, error, messages: [])
                }
            } catch {
                throw mountError("unmount", target: target, error, messages: [])
            }
        }
        throw AtollError(.internalError, "unmount \(target): more than 256 mounts stacked there")
    }

    /// Unmounts every mount strictly below `directory` (deepest first), so that removing the
    /// directory's files can never reach into a mounted tree. Failures are left to the removal.
    public static func unmountAll(below directory: String) {
        guard let bytes = try? FileSystem.readFile("/proc/self/mountinfo") else { return }
        var points: [String] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 4 else { continue }
            let point = unescapeMountInfo(String(fields[4]))
            if point.hasPrefix(directory + "/") { points.append(point) }
        }
        for point in points.sorted(by: { $0.count > $1.count }) { try? unmountAll(at: point) }
    }

    /// Whether `path` is currently a mount point in this process's mount namespace.
    public static func isMountPoint(_ path: String) -> Bool {
        guard let bytes = try? FileSystem.readFile("/proc/self/mountinfo") else { return false }
        let wanted = (path as NSString).standardizingPath
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 4 else { continue }
            if unescapeMountInfo(String(fields[4])) == wanted { return true }
        }
        return false
    }

    /// The mount point, file-system type and source of the mount that holds `path`, from
    /// /proc/self/mountinfo (the deepest mount point that is a prefix of the resolved path).
    public static func mountEntry(containing path: String) -> (mountPoint: String, type: String, source: String)? {
        guard let bytes = try? FileSystem.readFile("/proc/self/mountinfo") else { return nil }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var best: (String, String, String)?
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let left = halves[0].split(separator: " ")
            let right = halves[1].split(separator: " ")
            guard left.count > 4, right.count > 1 else { continue }
            let point = unescapeMountInfo(String(left[4]))
            let isPrefix = point == "/" || resolved == point || resolved.hasPrefix(point + "/")
            // Later lines are mounted later and hide earlier ones at the same point.
            if isPrefix, point.count >= (best?.0.count ?? 0) {
                best = (point, String(right[0]), unescapeMountInfo(String(right[1])))
            }
        }
        return best
    }

    // MARK: - Implementation

    var isBind: Bool { type == "bind" || options.contains("bind") || options.contains("rbind") }

    private func mountBind(at target: String) throws {
        var flags = UInt(MS_BIND)
        if options.contains("rbind") { flags |= UInt(MS_REC) }
        do {
            try Syscall.mount(source: source, target: target, type: "none", flags: flags)
        } catch {
            throw Self.mountError("bind mount \(source)", target: target, error, messages: [])
        }
        let (remountFlags, _) = classicFlagsAndData()
        guard remountFlags != 0 else { return }
        do {
            try Syscall.mount(
                source: "none", target: target, type: "none", flags: UInt(MS_REMOUNT) | UInt(MS_BIND) | remountFlags)
        } catch {
            try? Syscall.unmount(target, flags: Int32(MNT_DETACH))
            throw Self.mountError("remount read-only of bind mount \(source)", target: target, error, messages: [])
        }
    }

    private func mountClassic(at target: String) throws {
        let (flags, data) = classicFlagsAndData()
        if data.utf8.count > Self.classicDataLimit {
            throw AtollError(
                .resourceExhausted,
                "mount \(type) on \(target): the options take \(data.utf8.count) bytes, more than mount(2)'s "
                    + "\(Self.classicDataLimit)-byte page; use the new mount API")
        }
        do {
            try Syscall.mount(source: source, target: target, type: type, flags: flags, data: data.isEmpty ? nil : data)
        } catch {
            throw Self.mountError("mount \(type)", target: target, error, messages: [])
        }
    }

    private func mountWithMountAPI(at target: String) throws {
        let context: FileDescriptor
        do {
            context = try MountSyscall.fsopen(type)
        } catch {
            throw Self.mountError("mount \(type)", target: target, error, messages: [])
        }
        var attributes: UInt32 = 0
        do {
            if !source.isEmpty && source != "none" {
                try MountSyscall.setString(context, "source", source)
            }
            for option in options {
                if let flag = Self.attributeFlags[option] {
                    attributes |= flag
                } else if option == "rw" || option == "relatime" {
                    continue
                } else if option.hasPrefix("lowerdir=") {
                    for directory in Self.splitLowerDirectories(String(option.dropFirst("lowerdir=".count))) {
                        try MountSyscall.setString(context, "lowerdir+", directory)
                    }
                } else if let equals = option.firstIndex(of: "=") {
                    try MountSyscall.setString(
                        context, String(option[..<equals]), String(option[option.index(after: equals)...]))
                } else {
                    try MountSyscall.setFlag(context, option)
                }
            }
            try MountSyscall.create(context, "\(type) on \(target)")
            let mount = try MountSyscall.fsmount(context, attributes: attributes, target)
            try MountSyscall.moveMount(mount, to: target)
        } catch {
            throw Self.mountError(
                "mount \(type)", target: target, error, messages: MountSyscall.contextMessages(context))
        }
    }

    private static let attributeFlags: [String: UInt32] = [
        "ro": UInt32(ATOLL_MOUNT_ATTR_RDONLY), "nosuid": UInt32(ATOLL_MOUNT_ATTR_NOSUID),
        "nodev": UInt32(ATOLL_MOUNT_ATTR_NODEV), "noexec": UInt32(ATOLL_MOUNT_ATTR_NOEXEC),
    ]

    private static let classicFlags: [String: UInt] = [
        "ro": UInt(MS_RDONLY), "nosuid": UInt(MS_NOSUID), "nodev": UInt(MS_NODEV), "noexec": UInt(MS_NOEXEC),
        "sync": UInt(MS_SYNCHRONOUS), "noatime": UInt(MS_NOATIME), "nodiratime": UInt(MS_NODIRATIME),
        "relatime": UInt(MS_RELATIME), "strictatime": UInt(MS_STRICTATIME),
    ]

    /// mount(2) flags for the flag-like options and the rest as a comma-separated data string.
    func classicFlagsAndData() -> (UInt, String) {
        var flags: UInt = 0
        var data: [String] = []
        for option in options {
            if let flag = Self.classicFlags[option] {
                flags |= flag
            } else if option == "rw" || option == "bind" || option == "rbind" {
                continue
            } else {
                data.append(option)
            }
        }
        return (flags, data.joined(separator: ","))
    }

    /// Splits overlay's `lowerdir` value on the colons that are not escaped with a backslash.
    static func splitLowerDirectories(_ value: String) -> [String] {
        var result: [String] = []
        var current = ""
        var escaped = false
        for character in value {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":" {
                result.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        result.append(current)
        return result.filter { !$0.isEmpty }
    }

    static func mountError(_ what: String, target: String, _ error: any Error, messages: [String]) -> AtollError {
        let systemError = error as? SystemCallError
        let reason: String
        if !messages.isEmpty {
            reason = messages.joined(separator: "; ")
        } else if let systemError {
            reason = String(cString: strerror(systemError.errno)).lowercased()
        } else {
            reason = "\(error)"
        }
        let code: AtollError.Code
        switch systemError?.errno {
        case EPERM, EACCES: code = .permissionDenied
        case ENOENT, ENOTDIR: code = .notFound
        case ENODEV, ENOSYS, EOPNOTSUPP: code = .unsupported
        case EINVAL: code = .invalidArgument
        case EBUSY: code = .failedPrecondition
        default: code = .internalError
        }
        var message = "\(what) on \(target) failed: \(reason)"
        if !messages.isEmpty, let systemError {
            message += " (\(systemError.description))"
        }
        return AtollError(code, message, cause: error)
    }

    private static func unescapeMountInfo(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
                let value = UInt8(String(decoding: utf8[(i + 1)...(i + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
