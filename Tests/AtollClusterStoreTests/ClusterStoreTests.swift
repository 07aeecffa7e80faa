import AtollCore
import Foundation
import Testing

@testable import AtollClusterStore

@Suite struct ClusterStoreFileTests {
    @Test func theDatabaseIsInWALModeWithFullSynchronousWritesAndForeignKeys() async throws {
        try await withStore { store, _ in
            let journal = try store.pragma("journal_mode")
            let synchronous = try store.pragma("synchronous")
            let foreignKeys = try store.pragma("foreign_keys")
            #expect(journal == "wal")
            #expect(synchronous == "2", "2 is FULL")
            #expect(foreignKeys == "1")
        }
    }

    @Test func theSchemaIsMigratedUnderClusterV1() async throws {
        try await withStore { store, _ in
            let migrations = try store.appliedMigrations()
            #expect(migrations == ["cluster-v1", "cluster-v2-raft"])
        }
    }

    @Test func missingDirectoriesAndTheFileAreCreatedPrivate() async throws {
        try await withScratchDirectory { directory in
            let path = directory + "/swarm/state/cluster.db"
            let store = try ClusterStore(path: path)
            _ = try store.createNode(sampleNode(hostname: "alpha"))
            #expect(store.path == path)
            #expect(try Syscall.stat(directory + "/swarm").st_mode & 0o777 == 0o700)
            #expect(try Syscall.stat(directory + "/swarm/state").st_mode & 0o777 == 0o700)
            #expect(try Syscall.stat(path).st_mode & 0o777 == 0o600)
            #expect(try Syscall.stat(path + "-wal").st_mode & 0o777 == 0o600)
        }
    }

    @Test func reopeningTheSamePathKeepsEverything() async throws {
        try await withScratchDirectory { directory in
            let path = directory + "/cluster.db"
            let first = try ClusterStore(path: path)
            let cluster = try first.createCluster(sampleCluster())
            let alpha = try first.createNode(sampleNode(hostname: "alpha", role: .manager))
            let beta = try first.updateNode(try first.createNode(sampleNode(hostname: "beta")).id) {
                $0.availability = .drain
            }
            let gone = try first.createNode(sampleNode(hostname: "gamma"))
            try first.removeNode(gone.id)
            try first.close()

            let second = try ClusterStore(path: path)
            #expect(try second.cluster() == cluster)
            #expect(try second.nodes() == [alpha, beta])
            #expect(try second.node(beta.id)?.version == 2)
            #expect(try second.node(gone.id) == nil)
            let next = try second.updateNode(alpha.id) { $0.state = .down }
            #expect(next.version == 2)
        }
    }

    @Test func aFileThatIsNotADatabaseGivesAnErrorNamingThePath() async throws {
        try await withScratchDirectory { directory in
            let path = directory + "/cluster.db"
            try FileSystem.writeFile(path, Array(String(repeating: "not a database. ", count: 512).utf8))
            let error = atollError { _ = try ClusterStore(path: path) }
            #expect(error?.code == .dataLoss)
            #expect(error?.message.contains(path) == true, "\(String(describing: error))")
        }
    }

    @Test func aDirectoryWhereTheFileShouldBeGivesAnErrorNamingThePath() async throws {
        try await withScratchDirectory { directory in
            let path = directory + "/cluster.db"
            try Syscall.mkdir(path)
            let error = atollError { _ = try ClusterStore(path: path) }
            #expect(error != nil)
            #expect(error?.message.contains(path) == true, "\(String(describing: error))")
        }
    }

    @Test func aClosedStoreRefusesAccessWithAClearError() async throws {
        try await withStore { store, _ in
            try store.close()
            let error = atollError { _ = try store.nodes() }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message.contains("closed") == true)
        }
    }
}

@Suite struct ClusterRowTests {
    @Test func theClusterIsAbsentUntilCreatedAndIsCreatedOnlyOnce() async throws {
        try await withStore { store, _ in
            #expect(try store.cluster() == nil)
            let created = try store.createCluster(sampleCluster())
            #expect(created.version == 1)
            #expect(created.createdAt == created.updatedAt)
            #expect(created.createdAt > TestClock.start)
            #expect(created.heartbeatPeriodSeconds == 5)
            #expect(try store.cluster() == created)

            let again = atollError { _ = try store.createCluster(sampleCluster(id: "cluster-2")) }
            #expect(again?.code == .alreadyExists)
            #expect(try store.cluster()?.id == "cluster-1")
        }
    }

    @Test func updatingTheClusterBumpsItsVersionAndKeepsItsIdentity() async throws {
        try await withStore { store, _ in
            let created = try store.createCluster(sampleCluster())
            let updated = try store.updateCluster(expectedVersion: 1) {
                $0.heartbeatPeriodSeconds = 2
                $0.workerTokenSecret = "rotated"
                $0.id = "hijacked"
                $0.version = 99
                $0.createdAt = .distantPast
            }
            #expect(updated.version == 2)
            #expect(updated.id == created.id)
            #expect(updated.createdAt == created.createdAt)
            #expect(updated.updatedAt > created.updatedAt)
            #expect(updated.heartbeatPeriodSeconds == 2)
            #expect(try store.cluster() == updated)
        }
    }

    @Test func updatingTheClusterWithAStaleVersionFails() async throws {
        try await withStore { store, _ in
            _ = try store.createCluster(sampleCluster())
            _ = try store.updateCluster { $0.heartbeatPeriodSeconds = 3 }
            let error = atollError { _ = try store.updateCluster(expectedVersion: 1) { $0.heartbeatPeriodSeconds = 9 } }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message == "cluster cluster-1 was changed (version 2, expected 1); retry")
            #expect(try store.cluster()?.heartbeatPeriodSeconds == 3)
        }
    }

    @Test func updatingAClusterThatDoesNotExistFailsWithNotFound() async throws {
        try await withStore { store, _ in
            let error = atollError { _ = try store.updateCluster { $0.heartbeatPeriodSeconds = 1 } }
            #expect(error?.code == .notFound)
        }
    }
}
