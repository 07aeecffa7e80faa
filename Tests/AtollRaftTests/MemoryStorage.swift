import Synchronization

@testable import AtollRaft

/// RaftStorage in memory. Its state machine appends the bytes of each applied command (as a string)
/// to `commands`, and refuses a command whose bytes are "refuse".
final class MemoryStorage: RaftStorage {
    struct State {
        var hardState = RaftHardState(term: 0, votedFor: nil)
        var entries: [RaftEntry] = []
        var appliedIndex: UInt64 = 0
        /// Commands the state machine applied, in order.
        var commands: [String] = []
        /// Commands it refused, in order.
        var refused: [String] = []
        /// Every index passed to apply, in call order: must be contiguous and never repeat.
        var applyCalls: [UInt64] = []
        /// When set, apply throws (a full disk).
        var failApply = false
    }

    struct StorageFailure: Error {}

    let state: Mutex<State>

    /// A storage whose log starts with a configuration of `members` at index 1, term 0 (how a new
    /// cluster is bootstrapped on each of its first servers); an empty log when nil.
    init(bootstrap members: [RaftMember]? = nil) throws {
        var initial = State()
        if let members {
            initial.entries = [try RaftEntry.configuration(index: 1, term: 0, members: members)]
        }
        state = Mutex(initial)
    }

    var snapshot: State { state.withLock { $0 } }
    var commands: [String] { state.withLock { $0.commands } }

    func load() throws -> (hardState: RaftHardState, entries: [RaftEntry], appliedIndex: UInt64) {
        state.withLock { ($0.hardState, $0.entries, $0.appliedIndex) }
    }

    func save(_ hardState: RaftHardState) throws {
        state.withLock { $0.hardState = hardState }
    }

    func append(_ entries: [RaftEntry]) throws {
        try state.withLock { state in
            guard let first = entries.first, first.index >= 1, first.index <= UInt64(state.entries.count) + 1 else {
                throw StorageFailure()
            }
            state.entries.removeSubrange(Int(first.index - 1)...)
            state.entries.append(contentsOf: entries)
        }
    }

    func apply(_ entry: RaftEntry) throws -> RaftApplyOutcome {
        try state.withLock { state in
            if state.failApply { throw StorageFailure() }
            state.applyCalls.append(entry.index)
            state.appliedIndex = entry.index
            guard entry.kind == .command else { return .applied }
            let command = String(decoding: entry.data, as: UTF8.self)
            if command == "refuse" {
                state.refused.append(command)
                return .refused("the test state machine refuses \"refuse\"")
            }
            state.commands.append(command)
            return .applied
        }
    }
}
