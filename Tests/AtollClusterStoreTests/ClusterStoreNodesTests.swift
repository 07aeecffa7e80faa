import AtollCore
import Foundation
import Testing

@testable import AtollClusterStore

@Suite struct ClusterStoreNodesTests {
    @Test func nodesCanBeCreatedReadUpdatedAndRemoved() async throws {
        try await withStore { store, _ in
            let created = try store.createNode(sampleNode(hostname: "alpha"))
            #expect(created.version == 1)
            #expect(created.createdAt == created.updatedAt)
            #expect(created.createdAt > TestClock.start)
            #expect(try store.node(created.id) == created)

            let updated = try store.updateNode(created.id) {
                $0.state = .down
                $0.stateMessage = "heartbeat failure"
                $0.labels["disk"] = "ssd"
            }
            #expect(updated.state == .down)
            #expect(updated.labels == ["zone": "a", "disk": "ssd"])
            #expect(try store.node(created.id) == updated)

            try store.removeNode(created.id)
            #expect(try store.node(created.id) == nil)
            #expect(try store.nodes().isEmpty)
        }
    }

    @Test func everyWriteBumpsTheVersionByOneAndMovesUpdatedAt() async throws {
        try await withStore { store, _ in
            var node = try store.createNode(sampleNode(hostname: "alpha"))
            for expected in Int64(2)...6 {
                let previous = node
                node = try store.updateNode(node.id) { $0.cpus += 1 }
                #expect(node.version == expected)
                #expect(node.updatedAt > previous.updatedAt)
                #expect(node.createdAt == previous.createdAt)
            }
            #expect(try store.node(node.id)?.version == 6)
            #expect(try store.node(node.id)?.cpus == 9)
        }
    }

    @Test func theStoreKeepsIDVersionAndCreationTimeWhateverTheClosureDoes() async throws {
        try await withStore { store, _ in
            let created = try store.createNode(sampleNode(hostname: "alpha"))
            let updated = try store.updateNode(created.id) {
                $0.id = "someone-else"
                $0.version = 100
                $0.createdAt = .distantPast
                $0.hostname = "renamed"
            }
            #expect(updated.id == created.id)
            #expect(updated.version == 2)
            #expect(updated.createdAt == created.createdAt)
            #expect(updated.hostname == "renamed")
            #expect(try store.node("someone-else") == nil)
            #expect(try store.node(created.id) == updated)
        }
    }

    @Test func anUpdateWithAStaleVersionFailsAndChangesNothing() async throws {
        try await withStore { store, _ in
            let created = try store.createNode(sampleNode(hostname: "alpha"))
            let current = try store.updateNode(created.id, expectedVersion: 1) { $0.availability = .pause }
            #expect(current.version == 2)

            let error = atollError {
                _ = try store.updateNode(created.id, expectedVersion: 1) { $0.availability = .drain }
            }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message == "node \(created.id) was changed (version 2, expected 1); retry")
            #expect(try store.node(created.id) == current)

            let removal = atollError { try store.removeNode(created.id, expectedVersion: 1) }
            #expect(removal?.code == .failedPrecondition)
            #expect(try store.node(created.id) != nil)
            try store.removeNode(created.id, expectedVersion: 2)
            #expect(try store.node(created.id) == nil)
        }
    }

    @Test func anErrorThrownByTheUpdateClosureRollsBackAndPassesThrough() async throws {
        struct Refused: Error {}
        try await withStore { store, _ in
            let created = try store.createNode(sampleNode(hostname: "alpha"))
            #expect(throws: Refused.self) {
                _ = try store.updateNode(created.id) {
                    $0.state = .down
                    throw Refused()
                }
            }
            #expect(try store.node(created.id) == created)
        }
    }

    @Test func missingAndDuplicateNodesGiveNotFoundAndAlreadyExists() async throws {
        try await withStore { store, _ in
            let created = try store.createNode(sampleNode(hostname: "alpha"))
            #expect(
                atollError { _ = try store.createNode(sampleNode(id: created.id, hostname: "beta")) }?.code
                    == .alreadyExists)
            #expect(try store.node(created.id)?.hostname == "alpha")
            #expect(atollError { _ = try store.updateNode("nope") { $0.cpus = 1 } }?.code == .notFound)
            #expect(atollError { try store.removeNode("nope") }?.code == .notFound)
            #expect(try store.node("nope") == nil)
        }
    }

    @Test func malformedNodeIDsAreRejected() async throws {
        try await withStore { store, _ in
            for id in ["", "has space", "tab\there", String(repeating: "a", count: 129)] {
                #expect(
                    atollError { _ = try store.createNode(sampleNode(id: id, hostname: "h")) }?.code == .invalidArgument
                )
            }
            let nodes = try store.nodes()
            #expect(nodes.isEmpty)
        }
    }

    @Test func listsAreOrderedByHostnameThenIDAndFilterByRoleAndState() async throws {
        try await withStore { store, _ in
            let c = try store.createNode(sampleNode(id: "ccc", hostname: "beta"))
            let a = try store.createNode(sampleNode(id: "aaa", hostname: "gamma", role: .manager))
            let b = try store.createNode(sampleNode(id: "bbb", hostname: "beta", role: .manager))
            let d = try store.updateNode(try store.createNode(sampleNode(id: "ddd", hostname: "alpha")).id) {
                $0.state = .down
            }
            #expect(try store.nodes() == [d, b, c, a])
            #expect(try store.nodes(role: .manager) == [b, a])
            #expect(try store.nodes(role: .worker) == [d, c])
            #expect(try store.nodes(state: .ready) == [b, c, a])
            #expect(try store.nodes(state: .down) == [d])
            #expect(try store.nodes(state: .disconnected).isEmpty)

            // The indexed columns follow updates.
            _ = try store.updateNode(a.id) {
                $0.role = .worker
                $0.hostname = "aardvark"
            }
            #expect(try store.nodes(role: .manager).map(\.id) == ["bbb"])
            #expect(try store.nodes().map(\.id) == ["aaa", "ddd", "bbb", "ccc"])
        }
    }

    @Test func fiveHundredNodesListInOneCall() async throws {
        try await withStore { store, _ in
            for index in 0..<500 {
                _ = try store.createNode(sampleNode(hostname: String(format: "node-%03d", index)))
            }
            let nodes = try store.nodes()
            #expect(nodes.count == 500)
            #expect(nodes.map(\.hostname) == (0..<500).map { String(format: "node-%03d", $0) })
        }
    }
}

@Suite struct ResolveNodeTests {
    @Test func aNodeIsFoundByItsFullID() async throws {
        try await withStore { store, _ in
            let node = try store.createNode(sampleNode(id: "abcdef0123456789abcdef012", hostname: "alpha"))
            _ = try store.createNode(sampleNode(id: "abcdef0123456789abcdef013", hostname: "beta"))
            #expect(try store.resolveNode(node.id) == node)
        }
    }

    @Test func aNodeIsFoundByAUniqueIDPrefix() async throws {
        try await withStore { store, _ in
            let node = try store.createNode(sampleNode(id: "k3j5v8", hostname: "alpha"))
            _ = try store.createNode(sampleNode(id: "k4aaaa", hostname: "beta"))
            #expect(try store.resolveNode("k3") == node)
            #expect(try store.resolveNode("k3j5v") == node)
        }
    }

    @Test func aNodeIsFoundByItsExactHostname() async throws {
        try await withStore { store, _ in
            let node = try store.createNode(sampleNode(hostname: "worker-1"))
            _ = try store.createNode(sampleNode(hostname: "worker-10"))
            #expect(try store.resolveNode("worker-1") == node)
        }
    }

    @Test func aPrefixSharedByTwoNodesIsAmbiguous() async throws {
        try await withStore { store, _ in
            _ = try store.createNode(sampleNode(id: "abc111", hostname: "alpha"))
            _ = try store.createNode(sampleNode(id: "abc222", hostname: "beta"))
            let error = atollError { _ = try store.resolveNode("abc") }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.hasPrefix("ambiguous") == true, "\(String(describing: error))")
        }
    }

    @Test func aHostnameSharedByTwoNodesIsAmbiguous() async throws {
        try await withStore { store, _ in
            _ = try store.createNode(sampleNode(hostname: "twin"))
            _ = try store.createNode(sampleNode(hostname: "twin"))
            let error = atollError { _ = try store.resolveNode("twin") }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.hasPrefix("ambiguous") == true, "\(String(describing: error))")
        }
    }

    @Test func aNameMatchingNothingIsNotFound() async throws {
        try await withStore { store, _ in
            _ = try store.createNode(sampleNode(id: "abc111", hostname: "alpha"))
            #expect(atollError { _ = try store.resolveNode("zzz") }?.code == .notFound)
            #expect(atollError { _ = try store.resolveNode("alph") }?.code == .notFound, "hostnames match exactly")
            #expect(atollError { _ = try store.resolveNode("%") }?.code == .notFound, "no pattern characters")
            #expect(atollError { _ = try store.resolveNode("") }?.code == .invalidArgument)
        }
    }
}
