import Synchronization
import Testing

/// Tells whether this process stalled: a task wakes every 10 ms and notes how late it woke.
///
/// In the full test run other tests block threads of the cooperative pool for seconds (synchronous
/// waits for processes, sleeps); when they hold all of them, nothing else in the process runs,
/// and when one frees up, every Raft timer of the test has expired at once.
final class StallWatch: Sendable {
    private final class Beat: Sendable {
        struct State {
            var last: ContinuousClock.Instant
            var longest: Duration
            /// When the last stall longer than the threshold of `calm` ended.
            var calmSince: ContinuousClock.Instant
        }

        let state: Mutex<State>

        init() {
            let now = ContinuousClock.now
            state = Mutex(State(last: now, longest: .zero, calmSince: now))
        }

        func tick(interval: Duration) {
            let now = ContinuousClock.now
            state.withLock { state in
                let late = now - state.last - interval
                state.longest = max(state.longest, late)
                if late > tolerableStall { state.calmSince = now }
                state.last = now
            }
        }
    }

    private static let interval = Duration.milliseconds(10)
    private let beat = Beat()
    private let task: Task<Void, Never>

    init() {
        let beat = self.beat
        task = Task.detached {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.interval)
                beat.tick(interval: Self.interval)
            }
        }
    }

    deinit {
        task.cancel()
    }

    /// The longest the watching task went unscheduled since the watch started, counting the wait
    /// for its next wake-up if that is already late.
    var longestStall: Duration {
        let now = ContinuousClock.now
        return beat.state.withLock { max($0.longest, now - $0.last - Self.interval) }
    }

    /// Waits until the process ran for `period` without a stall longer than `tolerableStall`, or
    /// for `limit` at most.
    func awaitCalm(for period: Duration, limit: Duration) async {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < limit {
            let now = ContinuousClock.now
            let calm = beat.state.withLock { state in
                now - state.calmSince >= period && now - state.last - Self.interval <= tolerableStall
            }
            if calm { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// The longest stall a cluster test on real timers is expected to ride out: half the minimum
/// election timeout. After a longer one, followers' election timers may expire before the
/// heartbeats due meanwhile are delivered, and a leader may find no quorum answered it: what Raft
/// does when servers really are silent that long, not a bug.
let tolerableStall = testTiming.electionTimeout.lowerBound / 2

/// Put in the comment of a check that must hold whatever the timing, so that `withStallRetries`
/// never excuses it.
let safetyViolation = "safety violation:"

/// Runs a scenario of servers on real timers, and runs it again if it failed after a stall.
///
/// All the servers of a test share one process, so a stall of the process (see `StallWatch`)
/// silences all of them at once; when it ends, followers time out and elect a new leader, and a
/// check that the leader did not change, or a proposal on the leader just waited for, fails
/// although the code under test did nothing wrong. So an issue recorded after a stall longer than
/// `tolerableStall` is recorded as a known issue (the test still passes), and once the process ran
/// for a while without a stall the whole scenario runs again from the start (it must build its own
/// cluster). An issue recorded before any such stall, in the last attempt, or whose comment
/// contains `safetyViolation` (no timing excuses two leaders in one term), is a failure as usual:
/// a scenario that fails without a stall still fails.
func withStallRetries(
    attempts: Int = 5, sourceLocation: SourceLocation = #_sourceLocation, _ scenario: () async throws -> Void
) async throws {
    for attempt in 1...max(1, attempts) {
        if attempt > 1 { await StallWatch().awaitCalm(for: .seconds(1), limit: .seconds(30)) }
        let watch = StallWatch()
        let spoiled = Mutex(false)
        let last = attempt >= attempts
        try await withKnownIssue(
            "attempt \(attempt) of \(attempts) failed after the process stalled: run again",
            isIntermittent: true, sourceLocation: sourceLocation
        ) {
            try await scenario()
        } matching: { issue in
            let safety = issue.comments.contains { $0.rawValue.contains(safetyViolation) }
            guard !last, !safety, watch.longestStall > tolerableStall else { return false }
            spoiled.withLock { $0 = true }
            return true
        }
        if !spoiled.withLock({ $0 }) { return }
    }
}

/// `withStallRetries` around a scenario on a fresh three-server cluster ("a", "b", "c"), all
/// started before the scenario and stopped after it.
func withThreeServers(
    sourceLocation: SourceLocation = #_sourceLocation, _ scenario: (TestCluster) async throws -> Void
) async throws {
    try await withStallRetries(sourceLocation: sourceLocation) {
        let cluster = try TestCluster(["a", "b", "c"])
        try await cluster.startAll()
        defer { Task { await cluster.stopAll() } }
        try await scenario(cluster)
    }
}
