/// One server of a Raft cluster: a stable identifier and the address its peers dial.
public struct RaftMember: Codable, Sendable, Hashable {
    /// Stable identifier, unique within the cluster.
    public var id: String
    /// Where the other servers reach this one (host:port for the transport).
    public var address: String

    public init(id: String, address: String) {
        self.id = id
        self.address = address
    }
}
