import Testing

@testable import AtollBuild

struct DockerfileModelTests {
    @Test func anEmptyDockerfileEscapesWithABackslash() {
        #expect(Dockerfile().escape == "\\")
        #expect(Dockerfile().stages.isEmpty)
    }
}
