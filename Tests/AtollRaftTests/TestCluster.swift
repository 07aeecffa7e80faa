import Foundation
import Logging
import Synchronization
import Testing

@testable import AtollRaft

/// Clocks for cluster tests: short enough for a quick suite, long enough that a loaded machine
/// (CPU contention delays every task by tens of milliseconds) does not make followers miss a
/// leader's heartbeats: heartbeat 50 ms, election 400–800 ms; an RPC is only given up after 1 s
/// (the in-memory transport answers at once or throws, so a timeout only ever comes from a starved
/// process). Small batches, so that catching up takes several appends.
let testTiming = RaftTiming(
    heartbeatInterval: .milliseconds(50), electionTimeout: .milliseconds(400)...(.milliseconds(800)),
    rpcTimeout: .seconds(1), maxEntriesPerAppend: 4)

/// Warnings and errors only, so that the test output stays readable.
let quietLogger: Logger = {
    var logger = Logger(label: "atoll.raft.test")
    logger.logLevel = .warning
    return logger
}()

func testMember(_ id: String) -> RaftMember {
    RaftMember(id: id, address: "\(id).managers.test:7946")
}

struct WaitTimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting until \(what)" }
}

/// Polls `condition` every 10 ms until it holds, and returns as soon as it does; records an issue
/// and throws once it was polled for `timeout` in vain. Only the time the poller was given counts:
/// a sleep that overran because the process was starved (in the full test run other tests may hold
/// every thread for seconds) counts as 50 ms at most, so that a starved test still gets its time
/// once it runs again instead of failing on its first poll after the stall.
func eventually(
    _ what: String, timeout: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let poll = Duration.milliseconds(10)
    var left = timeout
    while true {
        if try await condition() { return }
        guard left > .zero else { break }
        let before = ContinuousClock.now
        try await Task.sleep(for: poll)
        left -= min(ContinuousClock.now - before, poll * 5)
    }
    Issue.record("timed out waiting until \(what)", sourceLocation: sourceLocation)
    throw WaitTimedOut(what: what)
}

/// Waits until `count` election deadlines of `node` have passed one after the other (each is
/// replaced once passed: by its ticker, when no leader was heard from meanwhile).
func awaitElectionTimeouts(
    of node: RaftNode, count: Int, sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    for _ in 0..<count {
        let deadline = await node.electionDeadline
        try await eventually("the election timer fires", sourceLocation: sourceLocation) {
            let current = await node.electionDeadline
            return current != deadline && ContinuousClock.now > deadline
        }
    }
}

/// Servers over a MemoryNetwork, each with a MemoryStorage that outlives its RaftNode (so a server
/// can be restarted over the same storage).
final class TestCluster: Sendable {
    let network = MemoryNetwork()
    private let storages = Mutex<[String: MemoryStorage]>([:])
    private let running = Mutex<[String: RaftNode]>([:])

    /// A cluster whose servers `ids` all start with the same bootstrap configuration of them all.
    init(_ ids: [String]) throws {
        let members = ids.map(testMember)
        for id in ids {
            let storage = try MemoryStorage(bootstrap: members)
            storages.withLock { $0[id] = storage }
        }
    }

    deinit {
        for node in running.withLock({ Array($0.values) }) {
            Task { await node.stop() }
        }
    }

    func storage(_ id: String) throws -> MemoryStorage {
        guard let storage = storages.withLock({ $0[id] }) else { throw WaitTimedOut(what: "a storage for \(id)") }
        return storage
    }

    /// Gives a server that is not in the cluster yet an empty storage.
    func addEmptyStorage(_ id: String) throws {
        let storage = try MemoryStorage()
        storages.withLock { $0[id] = storage }
    }

    /// Starts a new RaftNode for `id` over its storage.
    @discardableResult
    func start(_ id: String) async throws -> RaftNode {
        let node = RaftNode(
            self: testMember(id), storage: try storage(id), transport: network.transport(for: id), timing: testTiming,
            logger: quietLogger)
        network.register(id, node)
        running.withLock { $0[id] = node }
        try await node.start()
        return node
    }

    func startAll() async throws {
        for id in storages.withLock({ $0.keys.sorted() }) { try await start(id) }
    }

    /// Stops `id` and takes it off the network.
    func stop(_ id: String) async {
        network.unregister(id)
        let node = running.withLock { $0.removeValue(forKey: id) }
        await node?.stop()
    }

    func stopAll() async {
        for id in running.withLock({ Array($0.keys) }) { await stop(id) }
    }

    func node(_ id: String) throws -> RaftNode {
        guard let node = running.withLock({ $0[id] }) else { throw WaitTimedOut(what: "\(id) is running") }
        return node
    }

    var runningIDs: [String] { running.withLock { $0.keys.sorted() } }

    /// The ids of the running servers that say they lead.
    func leaders(among ids: [String]? = nil) async throws -> [String] {
        var found: [String] = []
        for id in ids ?? runningIDs where await (try node(id)).status.role == .leader {
            found.append(id)
        }
        return found
    }

    /// Waits until one of `ids` (default: every running server) leads and the others follow it in
    /// its term, and returns its id.
    func awaitLeader(
        among ids: [String]? = nil, timeout: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> String {
        var leader: String?
        try await eventually("one leader is elected", timeout: timeout, sourceLocation: sourceLocation) {
            leader = try await agreedLeader(among: ids ?? runningIDs)
            return leader != nil
        }
        guard let leader else { throw WaitTimedOut(what: "one leader is elected") }
        return leader
    }

    /// The one of `ids` that leads, if the others are followers that know it, in its term.
    private func agreedLeader(among ids: [String]) async throws -> String? {
        var statuses: [String: RaftStatus] = [:]
        for id in ids { statuses[id] = await (try node(id)).status }
        let leaders = statuses.filter { $0.value.role == .leader }
        guard leaders.count == 1, let leader = leaders.first else { return nil }
        let agreed = statuses.values.allSatisfy { other in
            other.term == leader.value.term && other.leader?.id == leader.key
        }
        return agreed ? leader.key : nil
    }

    /// Waits until every server in `ids` applied exactly `commands`.
    func awaitCommands(
        _ commands: [String], on ids: [String], timeout: Duration = .seconds(30),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        try await eventually("\(ids) applied \(commands)", timeout: timeout, sourceLocation: sourceLocation) {
            try ids.allSatisfy { try storage($0).commands == commands }
        }
    }
}

extension RaftNode {
    /// Proposes a string command.
    func propose(_ command: String, timeout: Duration = .seconds(30)) async throws -> RaftApplyOutcome {
        try await propose(Array(command.utf8), timeout: timeout)
    }
}
