import AtollCore
import GRDB

/// The node-local SQLite database (`engine.db`): images and tags now, containers, networks and
/// volumes as those modules arrive. Each module registers its own migrations.
public enum EngineDatabase {
    /// Opens (creating if needed) the database in WAL mode with synchronous=FULL, then runs every
    /// migration registered by `register`.
    public static func open(path: String, register: (inout DatabaseMigrator) -> Void) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // GRDB's WAL setup leaves the writer at synchronous=NORMAL; durability wants FULL.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            var migrator = DatabaseMigrator()
            register(&migrator)
            try migrator.migrate(pool)
        } catch {
            throw AtollError(.internalError, "cannot open the engine database \(path)", cause: error)
        }
        return pool
    }
}
