import AtollCore
import Foundation
import Synchronization

@testable import AtollClusterStore

/// Runs `body` with a fresh directory that is removed afterwards, whatever happens.
func withScratchDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = NSTemporaryDirectory() + "atoll-cluster-store-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileSystem.removeTree(path) }
    return try await body(path)
}

/// Runs `body` with a store in a scratch directory, on a clock that ticks one second per reading;
/// `beforeCommit` runs inside each write transaction just before it commits.
func withStore<T>(
    beforeCommit: (@Sendable (StoreEvent) throws -> Void)? = nil,
    _ body: (ClusterStore, TestClock) async throws -> T
) async throws -> T {
    try await withScratchDirectory { directory in
        let clock = TestClock()
        let store = try ClusterStore(
            path: directory + "/cluster.db", clock: { clock.tick() }, beforeCommit: beforeCommit)
        return try await body(store, clock)
    }
}

/// A clock that moves one second every time it is read.
final class TestClock: Sendable {
    static let start = Date(timeIntervalSince1970: 1_700_000_000)
    private let now = Mutex(TestClock.start)

    func tick() -> Date {
        now.withLock { now in
            now += 1
            return now
        }
    }
}

/// A node with every field set, so round trips check them all.
func sampleNode(id: String = NodeID.generate(), hostname: String, role: NodeRole = .worker) -> Node {
    Node(
        id: id, role: role, hostname: hostname, address: "192.0.2.10:2377", availability: .active,
        labels: ["zone": "a"], state: .ready, stateMessage: "", engineVersion: "0.9.0", os: "linux",
        architecture: "x86_64", cpus: 4, memoryBytes: 8 << 30, certificateSerial: "0a1b2c",
        certificateExpiry: Date(timeIntervalSince1970: 1_800_000_000.25))
}

func sampleCluster(id: String = "cluster-1") -> ClusterInfo {
    ClusterInfo(
        id: id, caCertificatePEM: "-----BEGIN CERTIFICATE-----\n…", caKeyPEM: "-----BEGIN PRIVATE KEY-----\n…",
        workerTokenSecret: "worker-secret", managerTokenSecret: "manager-secret")
}

/// The code of an AtollError thrown by `body`, or nil if it threw something else or nothing.
func atollError(_ body: () throws -> Void) -> AtollError? {
    do {
        try body()
        return nil
    } catch let error as AtollError {
        return error
    } catch {
        return nil
    }
}
