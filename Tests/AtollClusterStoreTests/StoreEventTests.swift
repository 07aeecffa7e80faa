import AtollCore
import Foundation
import Testing

@testable import AtollClusterStore

@Suite(.timeLimit(.minutes(1))) struct StoreEventTests {
    @Test func everyKindOfChangeArrivesInCommitOrder() async throws {
        try await withStore { store, _ in
            let events = store.events()
            let cluster = try store.createCluster(sampleCluster())
            _ = try store.updateCluster { $0.heartbeatPeriodSeconds = 1 }
            let node = try store.createNode(sampleNode(hostname: "alpha"))
            _ = try store.updateNode(node.id) { $0.state = .down }
            try store.removeNode(node.id)

            var iterator = events.makeAsyncIterator()
            var received: [StoreEvent] = []
            for _ in 0..<5 { received.append(try #require(await iterator.next())) }
            #expect(
                received == [
                    StoreEvent(kind: .cluster, action: .created, id: cluster.id, version: 1),
                    StoreEvent(kind: .cluster, action: .updated, id: cluster.id, version: 2),
                    StoreEvent(kind: .node, action: .created, id: node.id, version: 1),
                    StoreEvent(kind: .node, action: .updated, id: node.id, version: 2),
                    StoreEvent(kind: .node, action: .removed, id: node.id, version: 2),
                ])
        }
    }

    @Test func failedAndRolledBackWritesPublishNothing() async throws {
        struct Refused: Error {}
        try await withStore { store, _ in
            let node = try store.createNode(sampleNode(hostname: "alpha"))
            let events = store.events()
            _ = try? store.updateNode(node.id) {
                $0.state = .down
                throw Refused()
            }
            _ = try? store.updateNode(node.id, expectedVersion: 7) { $0.state = .down }
            _ = try? store.createNode(node)
            _ = try? store.removeNode("missing")
            _ = try store.updateNode(node.id) { $0.state = .ready }

            var iterator = events.makeAsyncIterator()
            let first = try #require(await iterator.next())
            #expect(first == StoreEvent(kind: .node, action: .updated, id: node.id, version: 2))
        }
    }

    @Test func aSubscriberSeesOnlyChangesFromWhenItSubscribed() async throws {
        try await withStore { store, _ in
            let before = try store.createNode(sampleNode(hostname: "alpha"))
            let events = store.events()
            let after = try store.createNode(sampleNode(hostname: "beta"))
            var iterator = events.makeAsyncIterator()
            let first = try #require(await iterator.next())
            #expect(first.id == after.id)
            #expect(first.id != before.id)
        }
    }

    @Test func aWriteThatFailsJustBeforeCommitPublishesNothing() async throws {
        struct Refused: Error {}
        try await withStore(beforeCommit: { event in if event.action == .removed { throw Refused() } }) { store, _ in
            let node = try store.createNode(sampleNode(hostname: "alpha"))
            let events = store.events()
            #expect(throws: Refused.self) { try store.removeNode(node.id) }
            #expect(try store.node(node.id) == node)
            _ = try store.updateNode(node.id) { $0.state = .down }

            var iterator = events.makeAsyncIterator()
            let first = try #require(await iterator.next())
            #expect(first == StoreEvent(kind: .node, action: .updated, id: node.id, version: 2))
        }
    }

    @Test func whenAnEventArrivesItsChangeIsAlreadyVisibleToReaders() async throws {
        // Each transaction lingers before it commits: an event published early would be read stale.
        try await withStore(beforeCommit: { _ in Thread.sleep(forTimeInterval: 0.02) }) { store, _ in
            let node = try store.createNode(sampleNode(hostname: "alpha"))
            let events = store.events()
            let checker = Task {
                var seen = 0
                var stale = 0
                for await event in events {
                    if let stored = try store.node(event.id), stored.version < event.version { stale += 1 }
                    seen += 1
                    if seen == 20 { break }
                }
                return (seen, stale)
            }
            // Off the cooperative pool, so the subscriber runs while a transaction lingers.
            try await BlockingWork.run {
                for _ in 0..<20 { _ = try store.updateNode(node.id) { $0.cpus += 1 } }
            }
            let (seen, stale) = try await checker.value
            #expect(seen == 20)
            #expect(stale == 0)
        }
    }

    @Test func concurrentWritersPublishEveryVersionExactlyOnceInOrder() async throws {
        try await withStore { store, _ in
            let node = try store.createNode(sampleNode(hostname: "alpha"))
            let events = store.events()
            let writers = 4
            let updatesEach = 25
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<writers {
                    group.addTask {
                        _ = try? await BlockingWork.run {
                            for _ in 0..<updatesEach { _ = try store.updateNode(node.id) { $0.cpus += 1 } }
                        }
                    }
                }
            }
            #expect(try store.node(node.id)?.version == Int64(1 + writers * updatesEach))
            var iterator = events.makeAsyncIterator()
            var versions: [Int64] = []
            for _ in 0..<(writers * updatesEach) { versions.append(try #require(await iterator.next()).version) }
            #expect(versions == Array(Int64(2)...Int64(1 + writers * updatesEach)))
        }
    }

    @Test func closingTheStoreEndsEveryStream() async throws {
        try await withStore { store, _ in
            let events = store.events()
            _ = try store.createNode(sampleNode(hostname: "alpha"))
            try store.close()
            var count = 0
            for await _ in events { count += 1 }
            #expect(count == 1)
            var late = store.events().makeAsyncIterator()
            #expect(await late.next() == nil)
        }
    }

    @Test func aSubscriberWhoseStreamEndsIsForgotten() async throws {
        try await withStore { store, _ in
            let consumer = Task {
                for await _ in store.events() {}
            }
            while store.hub.subscriberCount == 0 { await Task.yield() }
            consumer.cancel()
            await consumer.value
            #expect(store.hub.subscriberCount == 0)
            _ = try store.createNode(sampleNode(hostname: "alpha"))
        }
    }
}
