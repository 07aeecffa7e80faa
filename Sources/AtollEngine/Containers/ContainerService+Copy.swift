import AtollCore
import AtollStorage
import AtollVolumes
import CAtollShim
import Foundation
import Glibc

extension ContainerService {
    /// `cp CONTAINER:PATH -`: writes PATH (and what is below it) as a tar to `output`. Every
    /// component but the last resolves inside the container's root (symlinks included, as the
    /// container would see them); the walk then never follows a symlink, so nothing planted in the
    /// container can point it at the host (CVE-2018-15664).
    public func copyOut(_ reference: String, path: String, to output: FileDescriptor) throws {
        let record = try lookup(reference)
        try withCopyRoot(record, path: path, writing: false) { root, path in
            let (parent, name) = try resolveParent(path, in: root, container: record)
            try Layer.archive(entry: name, inDirectory: "/proc/self/fd/\(parent.rawValue)", to: output)
        }
    }

    /// `cp - CONTAINER:DIR`: extracts the tar read from `input` into the directory DIR of the
    /// container (which must exist). Entries cannot climb out of DIR, nor write through symlinks.
    public func copyIn(_ reference: String, path: String, from input: FileDescriptor) throws {
        let record = try lookup(reference)
        if record.settings.readOnly && record.state.status.isActive {
            throw AtollError.failedPrecondition("container \"\(record.name)\" has a read-only root file system")
        }
        try withCopyRoot(record, path: path, writing: true) { root, path in
            let directory = try resolveDirectory(path, in: root, container: record)
            try Layer.apply(from: input, toDirectory: "/proc/self/fd/\(directory.rawValue)", whiteouts: .plain)
        }
    }

    /// Runs `body` with the tree that holds `path` in the container and the path relative to it:
    /// the volume or bind source for a path at or below a mount target (atolld does not see the
    /// container's mounts in its own namespace), else the root file system.
    private func withCopyRoot<T>(
        _ record: ContainerRecord, path: String, writing: Bool, _ body: (String, String) throws -> T
    ) throws -> T {
        var components: [Substring] = []
        for component in path.split(separator: "/") where component != "." {
            if component == ".." { _ = components.popLast() } else { components.append(component) }
        }
        let clean = "/" + components.joined(separator: "/")
        let mount = record.settings.mounts.filter { clean == $0.target || clean.hasPrefix($0.target + "/") }
            .max { $0.target.count < $1.target.count }
        guard let mount else { return try withRootfs(record) { try body($0, path) } }
        let rest = String(clean.dropFirst(mount.target.count))
        if writing && mount.readOnly {
            throw AtollError.failedPrecondition(
                "cannot copy into \(mount.target) of container \(record.name): it is mounted read-only")
        }
        switch mount.kind {
        case .tmpfs:
            throw AtollError.failedPrecondition(
                "cannot copy to or from \(mount.target) of container \(record.name): a tmpfs mount exists only inside the container"
            )
        case .bind:
            return try body(mount.source, rest.isEmpty ? "." : rest)
        case .volume:
            return try volumes.withActivated(mount.source) {
                try body(volumes.dataPath(mount.source), rest.isEmpty ? "." : rest)
            }
        }
    }

    /// Runs `body` with the container's root file system mounted: the running container's own
    /// mount, or (for a stopped one, under its lock) a temporary mount removed afterwards.
    func withRootfs<T>(_ record: ContainerRecord, _ body: (String) throws -> T) throws -> T {
        if record.state.status.isActive { return try body(paths.rootfs(record.id)) }
        return try locks.withLock(record.id) {
            guard let current = try fetch(record.id) else {
                throw AtollError.notFound("no such container: \(record.name)")
            }
            let rootfs = paths.rootfs(current.id)
            if current.state.status.isActive { return try body(rootfs) }
            try Mount.unmountAll(at: rootfs)
            for mount in try snapshotter.mounts(current.snapshotKey) { try mount.mount(at: rootfs) }
            defer { try? Mount.unmountAll(at: rootfs) }
            return try body(rootfs)
        }
    }

    /// The directory holding `path`'s last component (resolved inside the root) and that name
    /// (nil for the root itself).
    func resolveParent(_ path: String, in rootfs: String, container: ContainerRecord) throws -> (
        FileDescriptor, String?
    ) {
        let components = path.split(separator: "/").map(String.init).filter { $0 != "." }
        let name = components.last
        guard name != ".." else {
            throw AtollError.invalidArgument("cannot copy \"\(path)\": name a file or directory, not \"..\"")
        }
        let parent = components.dropLast().joined(separator: "/")
        let directory = try openInRoot(parent.isEmpty ? "." : parent, rootfs: rootfs, path: path, container: container)
        if let name {
            do { _ = try Syscall.stat(name, at: directory.rawValue, followSymlinks: false) } catch {
                throw AtollError.notFound("could not find \"\(path)\" in container \(container.name)")
            }
        }
        return (directory, name)
    }

    func resolveDirectory(_ path: String, in rootfs: String, container: ContainerRecord) throws -> FileDescriptor {
        let relative = path.split(separator: "/").joined(separator: "/")
        return try openInRoot(relative.isEmpty ? "." : relative, rootfs: rootfs, path: path, container: container)
    }

    private func openInRoot(_ relative: String, rootfs: String, path: String, container: ContainerRecord) throws
        -> FileDescriptor
    {
        let root = try Syscall.open(rootfs, flags: O_RDONLY | O_DIRECTORY)
        do {
            return try Syscall.openat2(
                root.rawValue, relative, flags: O_RDONLY | O_DIRECTORY,
                resolve: UInt64(ATOLL_RESOLVE_IN_ROOT | ATOLL_RESOLVE_NO_MAGICLINKS | ATOLL_RESOLVE_NO_XDEV))
        } catch {
            if error.errno == ENOTDIR {
                throw AtollError.invalidArgument("\"\(path)\" in container \(container.name) is not a directory")
            }
            throw AtollError.notFound("could not find the directory of \"\(path)\" in container \(container.name)")
        }
    }
}
