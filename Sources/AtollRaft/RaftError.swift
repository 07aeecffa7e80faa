/// Why a Raft operation failed.
public enum RaftError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Only the leader accepts proposals; `leader` is the known one, if any.
    case notLeader(leader: RaftMember?)
    /// A proposal was not committed within its timeout; the message says how many managers answer.
    case noQuorum(String)
    /// A membership change is refused while another one is not committed yet.
    case configurationChangeInProgress
    case stopped
    /// E.g. removing the last member, adding one whose id exists.
    case invalidConfiguration(String)
    case storage(String)

    public var description: String {
        switch self {
        case .notLeader(let leader?):
            return "this manager is not the leader (the leader is \(leader.id) at \(leader.address))"
        case .notLeader(nil):
            return "this manager is not the leader (no leader is known: an election is under way or there is no quorum)"
        case .noQuorum(let message):
            return message
        case .configurationChangeInProgress:
            return "another membership change is not committed yet: retry once it is"
        case .stopped:
            return "the raft server is stopped"
        case .invalidConfiguration(let message):
            return "invalid cluster configuration: \(message)"
        case .storage(let message):
            return "raft storage failed: \(message)"
        }
    }
}
