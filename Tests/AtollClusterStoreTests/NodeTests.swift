import Foundation
import Testing

@testable import AtollClusterStore

@Suite struct NodeIDTests {
    @Test func generatedIDsAre25LowerCaseLettersAndDigits() {
        for _ in 0..<200 {
            let id = NodeID.generate()
            #expect(id.count == 25)
            #expect(id.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }, "\(id)")
            #expect(NodeID.isValid(id))
        }
    }

    @Test func generatedIDsDoNotRepeat() {
        let ids = Set((0..<1000).map { _ in NodeID.generate() })
        #expect(ids.count == 1000)
    }

    @Test func validityRejectsOtherShapes() {
        #expect(!NodeID.isValid(""))
        #expect(!NodeID.isValid(String(repeating: "a", count: 24)))
        #expect(!NodeID.isValid(String(repeating: "A", count: 25)))
        #expect(!NodeID.isValid(String(repeating: "a", count: 24) + "-"))
    }
}

@Suite struct NodeCodingTests {
    @Test func aNodeSurvivesAJSONRoundTrip() throws {
        var node = sampleNode(hostname: "alpha")
        node.version = 7
        node.createdAt = Date()
        node.updatedAt = node.createdAt.addingTimeInterval(0.123456)
        let decoded = try JSONDecoder().decode(Node.self, from: JSONEncoder().encode(node))
        #expect(decoded == node)
    }

    @Test func fieldsMissingFromOlderRecordsTakeTheirDefaults() throws {
        let json = #"{"id":"abc","role":"manager","hostname":"h1"}"#
        let node = try JSONDecoder().decode(Node.self, from: Data(json.utf8))
        #expect(node == Node(id: "abc", role: .manager, hostname: "h1"))
        let cluster = try JSONDecoder().decode(ClusterInfo.self, from: Data(#"{"id":"c"}"#.utf8))
        #expect(cluster.heartbeatPeriodSeconds == 5)
        #expect(cluster.caKeyPEM == "")
    }
}
