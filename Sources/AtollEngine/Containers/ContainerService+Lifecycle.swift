import AtollCore
import AtollOCI
import AtollRuntime
import Foundation
import Glibc

/// The containers' background work: pending restarts and health-check loops, one task each.
final class BackgroundTasks: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var restarts: [String: Task<Void, Never>] = [:]
    nonisolated(unsafe) private var healthChecks: [String: Task<Void, Never>] = [:]

    func setRestart(_ id: String, _ task: Task<Void, Never>?) {
        lock.lock()
        let old = restarts[id]
        restarts[id] = task
        lock.unlock()
        old?.cancel()
    }

    func setHealth(_ id: String, _ task: Task<Void, Never>?) {
        lock.lock()
        let old = healthChecks[id]
        healthChecks[id] = task
        lock.unlock()
        old?.cancel()
    }

    func cancelHealth(_ id: String) { setHealth(id, nil) }
}

extension ContainerService {
    // MARK: - Live restore

    /// Runs when the daemon starts: takes in exits recorded while it was down, reattaches to
    /// containers whose monitors still run, reconciles those whose monitors are gone (as after a
    /// reboot), finishes interrupted removals, and brings back containers whose policy says so.
    /// Then follows exits for the daemon's lifetime.
    public func recover() throws {
        // Volumes first learn who holds them, so that exits handled below let go of them properly
        // (a volume file system stays mounted while any container still runs with it).
        var volumeUsers: [String: Set<String>] = [:]
        for record in try database.read({ db in try ContainerRecord.fetchAll(db) }) where record.state.status.isActive {
            for mount in record.settings.mounts where mount.kind == .volume {
                volumeUsers[mount.source, default: []].insert(record.id)
            }
        }
        volumes.reconcileMounts(activeUsers: volumeUsers)
        let watcher = try ExitWatcher(directory: paths.exits) { [self] id, code, when in
            handleExit(id, code: code, at: when)
        }
        watcher.scan()
        let records = try database.read { db in try ContainerRecord.fetchAll(db) }
        for record in records {
            switch record.state.status {
            case .running, .paused:
                if monitorIsAlive(record) {
                    logger.info("reattached to container \(record.id) (monitor pid \(record.state.monitorPid))")
                    startHealthChecks(record)
                } else {
                    watcher.scan()
                    reconcileLostMonitor(record.id)
                }
            case .restarting:
                scheduleRestart(record.id, attempt: record.state.restartCount)
            case .removing:
                do { try removeStopped(record.id) } catch {
                    logger.error("finishing the removal of container \(record.id) failed: \(error)")
                }
            case .created, .exited, .dead:
                if record.state.startedAt != nil, shouldRestart(record),
                    record.settings.restartPolicy.mode == .always
                        || record.settings.restartPolicy.mode == .unlessStopped
                {
                    scheduleRestart(record.id, attempt: 0)
                }
            }
        }
        watcher.start()
        // Keep the watcher alive for the daemon's lifetime.
        watcherHolder.withLock { $0 = watcher }
    }

    /// Whether the conmon recorded for this container still runs.
    func monitorIsAlive(_ record: ContainerRecord) -> Bool {
        let pid = record.state.monitorPid
        guard pid > 0, ProcessLauncher.isAlive(pid),
            let cmdline = try? FileSystem.readFile("/proc/\(pid)/cmdline", limit: 1 << 16)
        else { return false }
        let text = String(decoding: cmdline.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return text.contains("conmon") && text.contains(record.id)
    }

    /// A running container whose monitor is gone and left no exit code: kill whatever remains of
    /// it and record an unknown exit (255), then apply its restart policy.
    func reconcileLostMonitor(_ id: String) {
        guard let record = try? fetch(id), record.state.status.isActive else { return }
        logger.warning("the monitor of container \(id) is gone and recorded no exit code; marking it exited")
        if let runtime = try? runtime(named: record.state.runtime), (try? runtime.state(id)) != nil {
            try? runtime.kill(id, signal: SIGKILL, all: true)
        }
        handleExit(id, code: 255, at: Date())
        locks.withLock(id) {
            guard var current = try? fetch(id) else { return }
            current.state.error = "the container's monitor was lost (daemon host restarted?); exit status unknown"
            try? save(current)
        }
    }

    // MARK: - Restart policies

    /// Whether the policy brings this (just exited) container back.
    func shouldRestart(_ record: ContainerRecord) -> Bool {
        let policy = record.settings.restartPolicy
        guard !record.state.stoppedByUser, !record.settings.autoRemove else { return false }
        switch policy.mode {
        case .no: return false
        case .always, .unlessStopped: return true
        case .onFailure:
            return record.state.exitCode != 0
                && (policy.maximumRetries == 0 || record.state.restartCount < policy.maximumRetries)
        }
    }

    /// Backoff before a restart: 100 ms doubling per quick failure, at most one minute; a run that
    /// lasted over 10 s starts the doubling again.
    static func restartDelay(attempt: Int) -> Duration {
        min(.milliseconds(100 << min(attempt, 10)), .seconds(60))
    }

    func scheduleRestart(_ id: String, attempt: Int) {
        var delay = Duration.milliseconds(100)
        var scheduled = false
        locks.withLock(id) {
            // The exit handler decides outside the lock: a user's stop (or a removal, or a start)
            // may have come in between, and wins.
            guard var record = try? fetch(id), !record.state.stoppedByUser,
                record.state.status == .exited || record.state.status == .restarting
                    || record.state.status == .created || record.state.status == .dead
            else { return }
            scheduled = true
            let ranLong =
                record.state.startedAt.map { start in
                    (record.state.finishedAt ?? Date()).timeIntervalSince(start) > 10
                } ?? false
            let quickFailures = ranLong ? 0 : record.state.restartCount
            delay = Self.restartDelay(attempt: max(attempt, quickFailures))
            record.state.status = .restarting
            try? save(record)
        }
        guard scheduled else { return }
        let task = Task.detached { [self] in
            try? await Task.sleep(for: delay)
            guard !Task.isCancelled else { return }
            do {
                try locks.withLock(id) {
                    guard var record = try fetch(id), record.state.status == .restarting, !record.state.stoppedByUser
                    else { return }
                    record.state.restartCount += 1
                    _ = try launch(&record, attach: false)
                }
            } catch {
                logger.error("restarting container \(id) failed: \(error)")
                waiters.notify(id)
                if let record = try? fetch(id), shouldRestart(record) {
                    scheduleRestart(id, attempt: attempt + 1)
                }
            }
        }
        background.setRestart(id, task)
    }

    func cancelRestart(_ id: String) { background.setRestart(id, nil) }

    // MARK: - Health checks

    /// The effective health check: the flags over the image's HEALTHCHECK; nil when none.
    func healthConfig(for record: ContainerRecord) -> ImageConfig.Healthcheck? {
        let settings = record.settings.health
        if settings?.disabled == true { return nil }
        var check = (try? imageConfig(record).healthcheck) ?? ImageConfig.Healthcheck()
        if let settings {
            if !settings.test.isEmpty { check.test = settings.test }
            if settings.interval > 0 { check.interval = settings.interval }
            if settings.timeout > 0 { check.timeout = settings.timeout }
            if settings.startPeriod > 0 { check.startPeriod = settings.startPeriod }
            if settings.retries > 0 { check.retries = settings.retries }
        }
        guard let test = check.test, let kind = test.first, kind == "CMD" || kind == "CMD-SHELL", test.count > 1 else {
            return nil
        }
        return check
    }

    /// Runs the health check every interval while the container runs; turns the container
    /// unhealthy after `retries` failures in a row (failures in the start period do not count),
    /// and restarts an unhealthy container that has a restart policy.
    func startHealthChecks(_ record: ContainerRecord) {
        guard let check = healthConfig(for: record), let test = check.test else { return }
        let id = record.id
        let interval = Duration.nanoseconds(check.interval ?? 30_000_000_000)
        let timeout = Duration.nanoseconds(check.timeout ?? 30_000_000_000)
        let startPeriod = TimeInterval(check.startPeriod ?? 0) / 1e9
        let retries = max(1, check.retries ?? 3)
        let command = test[0] == "CMD-SHELL" ? ["/bin/sh", "-c", test[1]] : Array(test.dropFirst())
        let task = Task.detached { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled, let current = try? fetch(id), current.state.status == .running else { return }
                let started = Date()
                let result = try? await BlockingWork.run {
                    try self.runProbe(current, command: command, timeout: timeout)
                }
                let probe = HealthState.Probe(
                    start: started, end: Date(), exitCode: result?.code ?? -1,
                    output: result?.output ?? "the health check could not run")
                let inStartPeriod = Date().timeIntervalSince(current.state.startedAt ?? started) < startPeriod
                var turnedUnhealthy = false
                locks.withLock(id) {
                    guard var latest = try? fetch(id), latest.state.status == .running else { return }
                    var health = latest.state.health ?? HealthState()
                    health.log = Array((health.log + [probe]).suffix(5))
                    if probe.exitCode == 0 {
                        health.status = .healthy
                        health.failingStreak = 0
                    } else if !inStartPeriod || health.status != .starting {
                        health.failingStreak += 1
                        if health.failingStreak >= retries && health.status != .unhealthy {
                            health.status = .unhealthy
                            turnedUnhealthy = true
                        }
                    }
                    latest.state.health = health
                    try? save(latest)
                }
                if turnedUnhealthy && current.settings.restartPolicy.mode != .no {
                    logger.info(
                        "container \(id) turned unhealthy; restarting it (restart policy \(current.settings.restartPolicy))"
                    )
                    // Not a user stop: the exit handler applies the restart policy.
                    if let runtime = try? runtime(named: current.state.runtime) {
                        try? runtime.kill(id, signal: SIGKILL)
                    }
                    return
                }
            }
        }
        background.setHealth(id, task)
    }

    /// Runs one health probe in the container; a probe that outlives `timeout` fails.
    func runProbe(_ record: ContainerRecord, command: [String], timeout: Duration) throws -> (
        code: Int32, output: String
    ) {
        let result = try execCaptured(record, command: command, timeout: timeout)
        return (result.code, String(result.output.suffix(4096)))
    }
}
