import AtollCore
import Foundation
import GRDB

extension ClusterStore {
    /// Stores a new node at version 1; `alreadyExists` if its ID is taken. The store sets
    /// `version`, `createdAt` and `updatedAt`.
    public func createNode(_ node: Node) throws -> Node {
        try Self.validate(nodeID: node.id)
        return try serializedWrite {
            var created = node
            created.version = 1
            created.createdAt = clock()
            created.updatedAt = created.createdAt
            try commit(.createNode(created), action: "create node \(node.id)")
            return created
        }
    }

    /// The node with this exact ID, or nil.
    public func node(_ id: String) throws -> Node? {
        try run("read node \(id)") { try pool.read { db in try fetchNode(db, id: id) } }
    }

    /// Every node, ordered by hostname, then ID.
    public func nodes() throws -> [Node] {
        try run("list nodes") {
            try pool.read { db in try fetchNodes(db, where: "1", arguments: []) }
        }
    }

    /// The nodes with this role, ordered by hostname, then ID.
    public func nodes(role: NodeRole) throws -> [Node] {
        try run("list \(role.rawValue) nodes") {
            try pool.read { db in try fetchNodes(db, where: "role = ?", arguments: [role.rawValue]) }
        }
    }

    /// The nodes in this state, ordered by hostname, then ID.
    public func nodes(state: NodeState) throws -> [Node] {
        try run("list \(state.rawValue) nodes") {
            try pool.read { db in try fetchNodes(db, where: "state = ?", arguments: [state.rawValue]) }
        }
    }

    /// Finds one node as Docker's `docker node inspect` does: by full ID, then by exact hostname,
    /// then by unique ID prefix. `notFound` if nothing matches; `invalidArgument("ambiguous …")`
    /// if several nodes share the hostname or the prefix.
    public func resolveNode(_ idOrName: String) throws -> Node {
        guard !idOrName.isEmpty else { throw AtollError.invalidArgument("a node ID or hostname is required") }
        return try run("look up node \(idOrName)") {
            try pool.read { db in
                if let node = try fetchNode(db, id: idOrName) { return node }
                let named = try fetchNodes(db, where: "hostname = ?", arguments: [idOrName])
                if named.count == 1 { return named[0] }
                if named.count > 1 {
                    throw AtollError.invalidArgument(
                        "ambiguous node name \"\(idOrName)\": \(named.count) nodes have that hostname "
                            + "(\(named.map(\.id).joined(separator: ", "))); use an ID")
                }
                let prefixed = try fetchNodes(
                    db, where: "substr(id, 1, length(?)) = ?", arguments: [idOrName, idOrName])
                if prefixed.count == 1 { return prefixed[0] }
                if prefixed.count > 1 {
                    throw AtollError.invalidArgument(
                        "ambiguous node ID prefix \"\(idOrName)\": it matches \(prefixed.count) nodes; "
                            + "use more characters")
                }
                throw AtollError.notFound("node \(idOrName) not found")
            }
        }
    }

    /// Applies `change` to the node and stores it with the next version. With `expectedVersion`
    /// set and the stored version different, `failedPrecondition` ("node X was changed (version N,
    /// expected M); retry"). The store keeps `id`, `version` and `createdAt` whatever `change`
    /// does, and sets `updatedAt`; an error thrown by `change` leaves the node as it was.
    public func updateNode(
        _ id: String, expectedVersion: Int64? = nil, _ change: (inout Node) throws -> Void
    ) throws -> Node {
        try serializedWrite {
            guard let stored = try node(id) else { throw AtollError.notFound("node \(id) not found") }
            try Self.check(expectedVersion, stored: stored.version, object: "node \(id)")
            var updated = stored
            try change(&updated)
            updated.id = stored.id
            updated.version = stored.version + 1
            updated.createdAt = stored.createdAt
            updated.updatedAt = clock()
            try commit(.updateNode(updated, expectedVersion: stored.version), action: "update node \(id)")
            return updated
        }
    }

    /// Removes the node; `notFound` if there is none, `failedPrecondition` if `expectedVersion` is
    /// set and differs. Its `removed` event carries the last version it had.
    public func removeNode(_ id: String, expectedVersion: Int64? = nil) throws {
        try serializedWrite {
            guard let stored = try node(id) else { throw AtollError.notFound("node \(id) not found") }
            try Self.check(expectedVersion, stored: stored.version, object: "node \(id)")
            try commit(.removeNode(id: id, expectedVersion: stored.version), action: "remove node \(id)")
        }
    }

    // MARK: - Rows

    func fetchNode(_ db: Database, id: String) throws -> Node? {
        try fetchNodes(db, where: "id = ?", arguments: [id]).first
    }

    /// Nodes matching a fixed SQL condition (never built from input: values go in `arguments`).
    func fetchNodes(_ db: Database, where condition: String, arguments: StatementArguments) throws -> [Node] {
        let rows = try Row.fetchCursor(
            db, sql: "SELECT id, version, data FROM nodes WHERE \(condition) ORDER BY hostname, id",
            arguments: arguments)
        var nodes: [Node] = []
        while let row = try rows.next() {
            let id: String = row["id"]
            var node = try decode(Node.self, from: row["data"], object: "node \(id)")
            node.version = row["version"]
            nodes.append(node)
        }
        return nodes
    }

    /// A node ID must be present and printable; `NodeID.generate()` makes the usual ones.
    static func validate(nodeID id: String) throws {
        guard !id.isEmpty else { throw AtollError.invalidArgument("the node ID is empty") }
        guard id.utf8.count <= 128,
            id.unicodeScalars.allSatisfy({ !$0.properties.isWhitespace && $0.value >= 0x20 && $0.value != 0x7F })
        else {
            throw AtollError.invalidArgument("invalid node ID \"\(id)\": want up to 128 printable characters")
        }
    }
}
