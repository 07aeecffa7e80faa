import AtollCore
import AtollRaft
import Foundation
import Synchronization
import Testing

@testable import AtollClusterStore

/// A replicator that hands each command to a second store (a follower's) as the next log
/// entry, and then to the writer's own: what a committed Raft entry does on every manager.
final class TwoReplicas: StoreReplicator {
    let leader: ClusterStore
    let follower: ClusterStore
    private let nextIndex = Mutex<UInt64>(3)

    init(leader: ClusterStore, follower: ClusterStore) {
        self.leader = leader
        self.follower = follower
    }

    func replicate(_ command: [UInt8]) throws -> RaftApplyOutcome {
        let index = nextIndex.withLock { index in
            defer { index += 1 }
            return index
        }
        let entry = RaftEntry(index: index, term: 2, kind: .command, data: command)
        try leader.append([entry])
        try follower.append([entry])
        let outcome = try leader.apply(entry)
        #expect(try follower.apply(entry) == outcome)
        return outcome
    }
}

@Suite struct ClusterStoreRaftTests {
    func cluster() -> ClusterInfo {
        ClusterInfo(
            id: "c1", caCertificatePEM: "CERT", caKeyPEM: "KEY", workerTokenSecret: "w", managerTokenSecret: "m")
    }

    @Test func theBootstrappedLogRebuildsTheWholeStateOnAnEmptyStore() async throws {
        try await withScratchDirectory { directory in
            let leader = try ClusterStore(path: directory + "/a.db")
            _ = try leader.createCluster(cluster())
            let node = try leader.createNode(sampleNode(hostname: "alpha", role: .manager))
            let member = RaftMember(id: node.id, address: "192.0.2.1:2377")
            try leader.bootstrapLog(member: member)
            try leader.bootstrapLog(member: member)  // a second call changes nothing

            let (hardState, entries, applied) = try leader.load()
            #expect(hardState.term == 1)
            #expect(entries.map(\.index) == [1, 2])
            #expect(entries.map(\.kind) == [.command, .configuration])
            #expect(try entries[1].members() == [member])
            #expect(applied == 2)

            let follower = try ClusterStore(path: directory + "/b.db")
            #expect(try follower.cluster() == nil)
            let events = follower.events()
            try follower.append(entries)
            for entry in entries { #expect(try follower.apply(entry) == .applied) }
            #expect(try follower.cluster()?.id == "c1")
            #expect(try follower.node(node.id) == node)
            #expect(try follower.load().appliedIndex == 2)
            var iterator = events.makeAsyncIterator()
            #expect(await iterator.next()?.kind == .cluster)
        }
    }

    @Test func replicatedWritesReachBothReplicasAndRefusalsComeBackAsErrors() async throws {
        try await withScratchDirectory { directory in
            let leader = try ClusterStore(path: directory + "/a.db")
            let follower = try ClusterStore(path: directory + "/b.db")
            _ = try leader.createCluster(cluster())
            try leader.bootstrapLog(member: RaftMember(id: "m1", address: "192.0.2.1:2377"))
            let (_, entries, _) = try leader.load()
            try follower.append(entries)
            for entry in entries { _ = try follower.apply(entry) }

            leader.replicate(through: TwoReplicas(leader: leader, follower: follower))
            #expect(leader.isReplicated)
            let node = try leader.createNode(sampleNode(hostname: "worker-1"))
            let updated = try leader.updateNode(node.id) { $0.state = .down }
            #expect(try follower.node(node.id) == updated)
            _ = try leader.updateCluster { $0.workerTokenSecret = "w2" }
            #expect(try follower.cluster()?.workerTokenSecret == "w2")

            // A stale expected version is refused on both replicas, and the caller hears why.
            #expect {
                try leader.removeNode(node.id, expectedVersion: 1)
            } throws: { error in
                (error as? AtollError)?.code == .failedPrecondition
                    && (error as? AtollError)?.message.contains("was changed") == true
            }
            #expect(try follower.node(node.id) != nil)
            try leader.removeNode(node.id)
            #expect(try follower.node(node.id) == nil)
            let (leaderApplied, followerApplied) = (try leader.load().appliedIndex, try follower.load().appliedIndex)
            #expect(leaderApplied == followerApplied)
        }
    }

    @Test func aRefusedEntryChangesNothingPublishesNothingAndStillCountsAsApplied() async throws {
        try await withScratchDirectory { directory in
            let store = try ClusterStore(path: directory + "/a.db")
            let node = try store.createNode(sampleNode(hostname: "alpha"))
            let events = store.events()
            var stale = node
            stale.version = 5
            let refused = RaftEntry(
                index: 1, term: 1, kind: .command,
                data: try StoreMutation.encode([
                    .updateNode(stale, expectedVersion: 1), .removeNode(id: node.id, expectedVersion: 9),
                ]))
            try store.append([refused])
            guard case .refused(let text) = try store.apply(refused) else {
                Issue.record("the entry was applied")
                return
            }
            #expect(StoreRefusal.error(text).code == .failedPrecondition)
            #expect(try store.node(node.id) == node)  // the first change was rolled back too
            #expect(try store.load().appliedIndex == 1)

            let accepted = RaftEntry(
                index: 2, term: 1, kind: .command,
                data: try StoreMutation.encode([.removeNode(id: node.id, expectedVersion: 1)]))
            try store.append([accepted])
            #expect(try store.apply(accepted) == .applied)
            var iterator = events.makeAsyncIterator()
            #expect(await iterator.next() == StoreEvent(kind: .node, action: .removed, id: node.id, version: 1))
        }
    }

    @Test func appendingReplacesTheEntriesFromItsFirstIndexOnAndHardStateIsKept() async throws {
        try await withScratchDirectory { directory in
            let path = directory + "/a.db"
            let store = try ClusterStore(path: path)
            try store.append((1...4).map { RaftEntry(index: $0, term: 1, kind: .noop, data: []) })
            try store.append([RaftEntry(index: 3, term: 2, kind: .noop, data: [])])
            try store.save(RaftHardState(term: 2, votedFor: "m2"))
            try store.close()
            let reopened = try ClusterStore(path: path)
            let (hardState, entries, applied) = try reopened.load()
            #expect(hardState == RaftHardState(term: 2, votedFor: "m2"))
            #expect(entries.map(\.index) == [1, 2, 3])
            #expect(entries.map(\.term) == [1, 1, 2])
            #expect(applied == 0)
        }
    }
}
