import GRDB

/// The schema of `cluster.db`. Each object is a JSON document in `data` (the source of truth),
/// next to the columns the manager filters and sorts on, which the store keeps in step with it.
enum ClusterMigrations {
    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("cluster-v1") { db in
            // One row at most: the primary key can only be 1.
            try db.execute(
                sql: """
                    CREATE TABLE cluster (
                        singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
                        id TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        data TEXT NOT NULL
                    );
                    CREATE TABLE nodes (
                        id TEXT PRIMARY KEY NOT NULL,
                        version INTEGER NOT NULL,
                        hostname TEXT NOT NULL,
                        role TEXT NOT NULL,
                        state TEXT NOT NULL,
                        availability TEXT NOT NULL,
                        data TEXT NOT NULL
                    );
                    CREATE INDEX nodes_by_hostname ON nodes(hostname, id);
                    CREATE INDEX nodes_by_role ON nodes(role);
                    CREATE INDEX nodes_by_state ON nodes(state);
                    """)
        }
        // The managers' replicated log (Raft) and each server's own hard state and progress.
        migrator.registerMigration("cluster-v2-raft") { db in
            try db.execute(
                sql: """
                    CREATE TABLE raft_log (
                        idx INTEGER PRIMARY KEY NOT NULL,
                        term INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        data BLOB NOT NULL
                    );
                    CREATE TABLE raft_state (
                        singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
                        term INTEGER NOT NULL,
                        voted_for TEXT,
                        applied_index INTEGER NOT NULL
                    );
                    INSERT INTO raft_state (singleton, term, voted_for, applied_index) VALUES (1, 0, NULL, 0);
                    """)
        }
    }
}
