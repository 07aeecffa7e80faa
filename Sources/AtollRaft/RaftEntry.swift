import Foundation

/// One entry of the replicated log.
///
/// There is no log compaction and no snapshot: the log keeps every entry from index 1, so the
/// state machine's first command carries a full state and a new server catches up by replaying
/// the whole log.
public struct RaftEntry: Codable, Sendable, Equatable {
    /// What an entry holds.
    public enum Kind: String, Codable, Sendable {
        /// Bytes for the state machine.
        case command
        /// A cluster membership: JSON of `[RaftMember]` (see `configuration(index:term:members:)`).
        case configuration
        /// Appended by each new leader to commit the entries of earlier terms; no data.
        case noop
    }

    /// Position in the log, from 1.
    public var index: UInt64
    /// Term of the leader that created the entry.
    public var term: UInt64
    public var kind: Kind
    /// command: the state machine's bytes; configuration: JSON of [RaftMember] (use
    /// `RaftEntry.configuration(index:term:members:)` / `members()`); noop: empty.
    public var data: [UInt8]

    public init(index: UInt64, term: UInt64, kind: Kind, data: [UInt8]) {
        self.index = index
        self.term = term
        self.kind = kind
        self.data = data
    }

    /// A configuration entry listing `members` (the whole membership, not a difference).
    public static func configuration(index: UInt64, term: UInt64, members: [RaftMember]) throws -> RaftEntry {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]  // the same bytes on every server
        do {
            let data = try encoder.encode(members)
            return RaftEntry(index: index, term: term, kind: .configuration, data: Array(data))
        } catch {
            throw RaftError.invalidConfiguration("cannot encode the members: \(error)")
        }
    }

    /// Decodes the members of a configuration entry; throws `invalidConfiguration` for any other
    /// kind or for bytes that are not a JSON member list.
    public func members() throws -> [RaftMember] {
        guard kind == .configuration else {
            throw RaftError.invalidConfiguration("entry \(index) is a \(kind.rawValue) entry, not a configuration")
        }
        do {
            return try JSONDecoder().decode([RaftMember].self, from: Data(data))
        } catch {
            throw RaftError.invalidConfiguration("entry \(index) does not hold a member list: \(error)")
        }
    }
}
