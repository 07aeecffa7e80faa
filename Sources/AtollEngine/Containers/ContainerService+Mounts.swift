import AtollCore
import AtollOCI
import AtollRuntime
import AtollStorage
import AtollVolumes
import Foundation
import GRDB
import Glibc

extension ContainerService {
    // MARK: - At create

    /// The container's mounts: its own, then those of `--volumes-from` containers, then an
    /// anonymous volume for each of the image's VOLUMEs not already covered. Two mounts on one
    /// target are an error.
    func resolveMounts(_ settings: ContainerSettings, image: ImageConfig.Config) throws -> [ContainerMount] {
        var mounts: [ContainerMount] = []
        var targets = Set<String>()
        for mount in settings.mounts {
            guard targets.insert(mount.target).inserted else {
                throw AtollError.invalidArgument("duplicate mount point: \(mount.target)")
            }
            mounts.append(mount)
        }
        for entry in settings.volumesFrom {
            let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
            let mode = parts.count == 2 ? parts[1] : ""
            guard ["", "ro", "rw"].contains(mode) else {
                throw AtollError.invalidArgument("invalid --volumes-from \"\(entry)\": the mode must be ro or rw")
            }
            let source: ContainerRecord
            do { source = try lookup(parts.first ?? "") } catch {
                throw AtollError.notFound("--volumes-from \"\(entry)\": no such container: \(parts.first ?? "")")
            }
            for var mount in source.settings.mounts where mount.kind != .tmpfs && !targets.contains(mount.target) {
                if !mode.isEmpty { mount.readOnly = mode == "ro" }
                mount.volumeLabels = [:]
                mount.volumeOptions = [:]
                targets.insert(mount.target)
                mounts.append(mount)
            }
        }
        for path in (image.volumes ?? [:]).keys.sorted() {
            // An image's VOLUME is a path inside the container, however it is spelled.
            let target = try MountParser.cleanTarget(
                path.hasPrefix("/") ? path : "/" + path, spec: "the image's VOLUME \(path)")
            guard targets.insert(target).inserted else { continue }
            mounts.append(ContainerMount(kind: .volume, source: "", target: target))
        }
        return mounts
    }

    /// Creates the volumes the mounts name that do not exist yet (and names the anonymous ones).
    /// Returns the mounts with every volume named, and the volumes this call created.
    func createVolumes(for mounts: [ContainerMount]) throws -> (mounts: [ContainerMount], created: [String]) {
        var result = mounts
        var created: [String] = []
        do {
            for index in result.indices where result[index].kind == .volume {
                let mount = result[index]
                let (record, made) = try volumes.create(
                    name: mount.source.isEmpty ? nil : mount.source, labels: mount.volumeLabels,
                    options: mount.volumeOptions, anonymous: mount.source.isEmpty)
                if made { created.append(record.name) }
                result[index].source = record.name
            }
        } catch {
            removeVolumes(created)
            throw error
        }
        return (result, created)
    }

    func removeVolumes(_ names: [String]) {
        for name in names {
            do { try volumes.remove(name, force: true) } catch {
                logger.warning("volume \(name) was kept: \(error)")
            }
        }
    }

    static func volumeUsers(_ record: ContainerRecord) -> [VolumeUserRecord] {
        Set(record.settings.mounts.filter { $0.kind == .volume }.map(\.source)).sorted().map {
            VolumeUserRecord(containerID: record.id, volume: $0)
        }
    }

    // MARK: - At start

    /// Makes every mount ready inside the mounted root file system: volumes activated (and filled
    /// from the image when new and empty), bind sources checked (or made, for `-v`), targets
    /// resolved inside the root and created. Returns the runtime's mounts, shallowest first.
    func prepareMounts(_ record: ContainerRecord, rootfs: String) throws -> [RuntimeSpec.Mount] {
        let ordered = record.settings.mounts.enumerated().sorted {
            let (a, b) = ($0.element.target.split(separator: "/").count, $1.element.target.split(separator: "/").count)
            return a != b ? a < b : $0.offset < $1.offset
        }.map(\.element)
        var result: [RuntimeSpec.Mount] = []
        for mount in ordered {
            switch mount.kind {
            case .volume:
                let data = try volumes.activate(mount.source, by: record.id)
                let destination = try MountTarget.prepare(mount.target, in: rootfs)
                if !mount.noCopy { try copyUp(volume: mount.source, data: data, from: destination, rootfs: rootfs) }
                result.append(
                    .init(
                        destination: destination, type: "bind", source: data,
                        options: ["rbind", mount.effectivePropagation] + (mount.readOnly ? ["ro"] : [])))
            case .bind:
                var st = stat()
                if stat(mount.source, &st) != 0 {
                    guard mount.createSource else {
                        throw AtollError.invalidArgument("bind source path does not exist: \(mount.source)")
                    }
                    try Syscall.mkdirAll(mount.source, mode: 0o755)
                    _ = stat(mount.source, &st)
                }
                let isDirectory = st.st_mode & S_IFMT == S_IFDIR
                let destination = try MountTarget.prepare(mount.target, in: rootfs, file: !isDirectory)
                result.append(
                    .init(
                        destination: destination, type: "bind", source: mount.source,
                        options: [mount.nonRecursive ? "bind" : "rbind", mount.effectivePropagation]
                            + (mount.readOnly ? ["ro"] : [])))
            case .tmpfs:
                let destination = try MountTarget.prepare(mount.target, in: rootfs)
                result.append(
                    .init(
                        destination: destination, type: "tmpfs", source: "tmpfs",
                        options: mount.tmpfsOptions + (mount.readOnly ? ["ro"] : [])))
            }
        }
        return result
    }

    /// Docker's copy-up: an empty volume mounted where the image has content gets that content
    /// (owner and mode of the directory too). Read through the root with no symlink followed.
    private func copyUp(volume: String, data: String, from destination: String, rootfs: String) throws {
        guard let source = MountTarget.openDirectory(destination, in: rootfs),
            let volumeDirectory = try? Syscall.open(data, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW),
            try FileSystem.listDirectory(volumeDirectory).isEmpty,
            !(try FileSystem.listDirectory(source)).isEmpty
        else { return }
        do {
            try DirectoryCopy.copyContents(of: source, into: data)
        } catch {
            // A half-filled volume would not be filled again: empty it for the next start.
            if let volumeDirectory = try? Syscall.open(data, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW) {
                try? FileSystem.removeContents(of: volumeDirectory, path: data)
            }
            throw AtollError.internalError(
                "cannot copy the image's \(destination) into volume \"\(volume)\"", cause: error)
        }
    }

    /// Releases the container's hold on its volumes (a volume with options is unmounted when its
    /// last running user lets go). Safe to repeat.
    func deactivateVolumes(_ record: ContainerRecord) {
        for mount in record.settings.mounts where mount.kind == .volume {
            volumes.deactivate(mount.source, by: record.id)
        }
    }

    // MARK: - Export and import

    /// `volume export`: the volume's content as a tar. Running containers that may write to the
    /// volume are paused while it is read (and resumed after), so the archive is one
    /// point-in-time state of what containers wrote.
    public func exportVolume(_ name: String, to output: FileDescriptor) throws {
        _ = try volumes.get(name)
        var paused: [String] = []
        defer {
            for id in paused {
                do { try setPaused(id, false) } catch {
                    logger.error("cannot resume container \(id) after export: \(error)")
                }
            }
        }
        for record in try containersUsing(volume: name)
        where record.state.status == .running
            && record.settings.mounts.contains(where: { $0.kind == .volume && $0.source == name && !$0.readOnly })
        {
            try setPaused(record.id, true)
            paused.append(record.id)
        }
        try volumes.withActivated(name) { try volumes.export(name, to: output) }
    }

    /// `volume import`: replaces the volume's content (creating the volume when missing).
    /// Refused while a running container uses it.
    public func importVolume(_ name: String, from input: FileDescriptor, upload: UploadStatus? = nil) throws {
        let (_, created) = try volumes.create(name: name)
        do {
            if let running = try containersUsing(volume: name).first(where: { $0.state.status.isActive }) {
                throw AtollError.failedPrecondition(
                    "volume \"\(name)\" is in use by running container \(running.name): stop it before importing")
            }
            try volumes.importContent(name, from: input, upload: upload)
        } catch {
            if created { try? volumes.remove(name, force: true) }
            throw error
        }
    }

    func containersUsing(volume name: String) throws -> [ContainerRecord] {
        try database.read { db in
            try ContainerRecord.fetchAll(
                db,
                sql:
                    "SELECT containers.* FROM containers JOIN volume_users ON volume_users.container_id = containers.id WHERE volume_users.volume = ?",
                arguments: [name])
        }
    }

    /// Docker's `Mounts` in `inspect`.
    func inspectMounts(_ record: ContainerRecord) -> [[String: Any]] {
        record.settings.mounts.map { mount in
            var entry: [String: Any] = [
                "Type": mount.kind.rawValue, "Destination": mount.target, "Mode": mount.mode, "RW": !mount.readOnly,
                "Propagation": mount.kind == .bind ? mount.effectivePropagation : "",
            ]
            switch mount.kind {
            case .volume:
                entry["Name"] = mount.source
                entry["Source"] = volumes.dataPath(mount.source)
                entry["Driver"] = VolumeService.driver
            case .bind:
                entry["Source"] = mount.source
            case .tmpfs:
                entry["Source"] = ""
            }
            return entry
        }
    }
}
