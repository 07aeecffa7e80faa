import Testing

@testable import AtollRaft

@Suite struct RaftEntryTests {
    @Test func aConfigurationEntryRoundTripsItsMembers() throws {
        let members = [testMember("a"), testMember("b")]
        let entry = try RaftEntry.configuration(index: 7, term: 3, members: members)
        #expect(entry.kind == .configuration)
        #expect(entry.index == 7 && entry.term == 3)
        #expect(try entry.members() == members)
        // Every server must encode a configuration to the same bytes.
        #expect(try RaftEntry.configuration(index: 7, term: 3, members: members).data == entry.data)
    }

    @Test func membersOfANonConfigurationEntryIsAnError() {
        let entry = RaftEntry(index: 1, term: 1, kind: .command, data: Array("x".utf8))
        #expect(throws: RaftError.self) { try entry.members() }
        let garbled = RaftEntry(index: 2, term: 1, kind: .configuration, data: Array("not json".utf8))
        #expect(throws: RaftError.self) { try garbled.members() }
    }

    @Test func notLeaderSaysWhereTheLeaderIs() {
        let known = RaftError.notLeader(leader: testMember("b"))
        #expect(known.description == "this manager is not the leader (the leader is b at b.managers.test:7946)")
        #expect(
            RaftError.notLeader(leader: nil).description
                == "this manager is not the leader (no leader is known: an election is under way or there is no quorum)"
        )
    }
}
