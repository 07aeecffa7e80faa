import Testing

@testable import AtollBuild

struct StageGraphTests {
    static func graph(_ text: String, target: String? = nil, args: [String: String] = [:]) throws -> StageGraph {
        let dockerfile = try Dockerfile.parse(text)
        let expander = WordExpander(environment: args)
        return try StageGraph(dockerfile, target: target) { try expander.expand($0) }
    }

    @Test func theLastStageIsBuiltAfterTheStagesItNeedsAndUnneededStagesAreLeftOut() throws {
        let graph = try Self.graph(
            """
            FROM busybox AS a
            FROM busybox AS unused
            FROM a AS b
            FROM busybox
            COPY --from=b /x /x
            COPY --from=0 /y /y
            """)
        #expect(graph.bases == [.image("busybox"), .image("busybox"), .stage(0), .image("busybox")])
        #expect(graph.dependencies == [[], [], [0], [2, 0]])
        #expect(graph.order == [0, 2, 3])
        #expect(graph.target == 3)
    }

    @Test func targetPicksAStageByNameInAnyCase() throws {
        let graph = try Self.graph(
            "FROM busybox AS Builder\nFROM scratch\nCOPY --from=builder /a /a\n", target: "BUILDER")
        #expect(graph.order == [0])
        #expect(graph.bases[1] == .scratch)
    }

    @Test func baseNamesAndCopySourcesExpandWithTheMetaArgs() throws {
        let graph = try Self.graph(
            "ARG BASE=busybox\nFROM $BASE AS one\nFROM ${BASE}:1\nCOPY --from=$SRC /a /a\n",
            args: ["BASE": "alpine", "SRC": "one"])
        #expect(graph.bases == [.image("alpine"), .image("alpine:1")])
        #expect(graph.dependencies[1] == [0])
        // An unknown --from name is an image.
        let image = try Self.graph("FROM busybox\nCOPY --from=nginx:1 /a /a\n")
        #expect(image.dependencies == [[]])
    }

    @Test func stagesThatDependOnEachOtherAreACycleNamedInTheError() throws {
        #expect {
            try Self.graph("FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n")
        } throws: { "\($0)".contains("cycle: \"b\" → \"a\" → \"b\"") }
        #expect {
            try Self.graph("FROM busybox AS self\nCOPY --from=self /x /x\n")
        } throws: { "\($0)".contains("cycle: \"self\" → \"self\"") }
    }

    @Test func anUnknownTargetOrAStageIndexOutOfRangeIsAnError() throws {
        #expect {
            try Self.graph("FROM busybox AS a\n", target: "b")
        } throws: { "\($0)".contains("target stage \"b\" could not be found") }
        #expect {
            try Self.graph("FROM busybox\nCOPY --from=3 /x /x\n")
        } throws: { "\($0)".contains("Dockerfile:2: COPY --from=3 names stage 3, but the Dockerfile has 1") }
    }
}
