import Foundation

/// Where containers keep their files: persistent ones under the root, runtime ones under the
/// run directory (a tmpfs in production, so a reboot clears them).
public struct ContainerPaths: Sendable {
    /// `<root>/containers`: one directory per container (the bundle: config.json, rootfs mount
    /// point, log, hostname and hosts files, exec sessions).
    public var containers: String
    /// `<run>/exits`: where monitors record exit codes.
    public var exits: String
    /// `<run>/s`: short symlinks to bundles for attach sockets.
    public var sockets: String
    /// `<run>/runtime`: the OCI runtime's state root.
    public var runtimeState: String

    public init(root: String, run: String) {
        containers = "\(root)/containers"
        exits = "\(run)/exits"
        sockets = "\(run)/s"
        runtimeState = "\(run)/runtime"
    }

    public func bundle(_ id: String) -> String { "\(containers)/\(id)" }
    public func rootfs(_ id: String) -> String { "\(containers)/\(id)/rootfs" }
    public func log(_ id: String) -> String { "\(containers)/\(id)/container.log" }
}

/// Tasks waiting for containers to stop. Each waiter is resumed exactly once: by `notify` or by
/// its own timeout, whichever removes it from the table first.
final class ExitWaiters: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var table: [String: [UUID: CheckedContinuation<Bool, Never>]] = [:]

    /// Waits until `notify(id)` or the timeout; true when notified. `isStopped` is checked after
    /// registering, so an exit between the caller's check and the registration is not missed.
    func wait(_ id: String, timeout: Duration?, isStopped: @escaping @Sendable () -> Bool) async -> Bool {
        let token = UUID()
        return await withCheckedContinuation { continuation in
            lock.lock()
            table[id, default: [:]][token] = continuation
            lock.unlock()
            if isStopped() {
                resume(id, token, with: true)
                return
            }
            if let timeout {
                Task {
                    try? await Task.sleep(for: timeout)
                    self.resume(id, token, with: false)
                }
            }
        }
    }

    /// Wakes every waiter of `id`.
    func notify(_ id: String) {
        lock.lock()
        let waiting = table.removeValue(forKey: id) ?? [:]
        lock.unlock()
        for continuation in waiting.values { continuation.resume(returning: true) }
    }

    private func resume(_ id: String, _ token: UUID, with value: Bool) {
        lock.lock()
        let continuation = table[id]?.removeValue(forKey: token)
        if table[id]?.isEmpty == true { table[id] = nil }
        lock.unlock()
        continuation?.resume(returning: value)
    }
}
