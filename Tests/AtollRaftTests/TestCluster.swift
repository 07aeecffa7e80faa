import Foundation
import Logging
import Synchronization
import Testing

@testable import AtollRaft

/// Fast clocks for tests: heartbeat 20 ms, election 100–200 ms; small batches so that catching up
/// takes several appends.
let fastTiming = RaftTiming(
    heartbeatInterval: .milliseconds(20), electionTimeout: .milliseconds(100)...(.milliseconds(200)),
    rpcTimeout: .milliseconds(100), maxEntriesPerAppend: 4)

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

/// Polls `condition` every 10 ms until it holds; records an issue and throws after `timeout`.
func eventually(
    _ what: String, timeout: Duration = .seconds(5), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("timed out waiting until \(what)", sourceLocation: sourceLocation)
    throw WaitTimedOut(what: what)
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
            self: testMember(id), storage: try storage(id), transport: network.transport(for: id), timing: fastTiming,
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

    /// Waits until exactly one of `ids` (default: every running server) leads, and returns its id.
    func awaitLeader(among ids: [String]? = nil, timeout: Duration = .seconds(5)) async throws -> String {
        var leader: String?
        try await eventually("one leader is elected", timeout: timeout) {
            let found = try await leaders(among: ids)
            leader = found.count == 1 ? found[0] : nil
            return leader != nil
        }
        guard let leader else { throw WaitTimedOut(what: "one leader is elected") }
        return leader
    }

    /// Waits until every server in `ids` applied exactly `commands`.
    func awaitCommands(_ commands: [String], on ids: [String], timeout: Duration = .seconds(5)) async throws {
        try await eventually("\(ids) applied \(commands)", timeout: timeout) {
            try ids.allSatisfy { try storage($0).commands == commands }
        }
    }
}

extension RaftNode {
    /// Proposes a string command.
    func propose(_ command: String, timeout: Duration = .seconds(5)) async throws -> RaftApplyOutcome {
        try await propose(Array(command.utf8), timeout: timeout)
    }
}
