import AtollCore
import AtollStorage
import Foundation
import Glibc

extension VolumeService {
    // MARK: - Use by containers

    /// Makes the volume's data directory ready for container `user` and returns it: a volume
    /// with options gets its file system mounted, once, for all its users.
    package func activate(_ name: String, by user: String) throws -> String {
        let record = try get(name)
        let path = dataPath(name)
        try locks.withLock(name) { () throws -> Void in
            if let options = try LocalVolumeOptions.parse(record.options), !Mount.isMountPoint(path) {
                var mountOptions = options.mountOptions
                if options.isBind, !mountOptions.contains("bind"), !mountOptions.contains("rbind") {
                    mountOptions.append("bind")
                }
                let mount = AtollStorage.Mount(
                    type: options.isBind ? "bind" : options.type, source: options.device, options: mountOptions)
                do {
                    try mount.mount(at: path)
                } catch {
                    throw AtollError.invalidArgument(
                        "cannot mount volume \"\(name)\" (type=\(options.type), device=\(options.device)): \(error)")
                }
            }
            activeUsers.withLock { users -> Void in users[name, default: []].insert(user) }
        }
        return path
    }

    /// Lets go of the volume for `user`; a volume with options is unmounted when its last user
    /// lets go. Safe to repeat.
    package func deactivate(_ name: String, by user: String) {
        locks.withLock(name) {
            let remaining = activeUsers.withLock { users -> Int in
                users[name]?.remove(user)
                if users[name]?.isEmpty == true { users[name] = nil }
                return users[name]?.count ?? 0
            }
            guard remaining == 0, let record = try? get(name), !record.options.isEmpty else { return }
            do { try Mount.unmountAll(at: dataPath(name)) } catch {
                logger.error("cannot unmount volume \(name): \(error)")
            }
        }
    }

    /// Runs `body` with the volume's file system mounted (export, `cp`).
    package func withActivated<T>(_ name: String, _ body: () throws -> T) throws -> T {
        let user = "tool-\(Identifier.random().prefix(12))"
        _ = try activate(name, by: user)
        defer { deactivate(name, by: user) }
        return try body()
    }

    /// After a daemon restart: the running containers' volumes are still mounted (their users
    /// are recorded again); a volume file system nobody uses any more is unmounted.
    package func reconcileMounts(activeUsers users: [String: Set<String>]) {
        activeUsers.withLock { $0 = users }
        guard let records = try? database.read({ db in try VolumeRecord.fetchAll(db) }) else { return }
        for record in records where !record.options.isEmpty && users[record.name] == nil {
            if Mount.isMountPoint(dataPath(record.name)) {
                logger.info("unmounting volume \(record.name): no running container uses it")
                try? Mount.unmountAll(at: dataPath(record.name))
            }
        }
    }
}
