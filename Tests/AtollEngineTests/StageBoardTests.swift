import AtollOCI
import Foundation
import Testing

@testable import AtollEngine

struct StageBoardTests {
    static let state = ImageState.scratch(platform: .host)

    @Test func waitersGetTheResultAStagePublishes() async throws {
        let board = StageBoard(building: [0, 1])
        let waiter = Task { try await board.result(of: 0) }
        try await Task.sleep(for: .milliseconds(20))
        await board.publish(0, .success(Self.state))
        #expect(try await waiter.value.key == Self.state.key)
        #expect(try await board.result(of: 0).key == Self.state.key, "a late caller gets it at once")
    }

    @Test func aFailedStageFailsItsWaiters() async throws {
        let board = StageBoard(building: [0])
        let waiter = Task { try await board.result(of: 0) }
        try await Task.sleep(for: .milliseconds(20))
        await board.publish(0, .failure(CancellationError()))
        await #expect(throws: CancellationError.self) { try await waiter.value }
    }

    @Test func aCancelledWaiterStopsWaiting() async throws {
        let board = StageBoard(building: [0, 1])
        let waiter = Task { try await board.result(of: 1) }
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
    }

    @Test func aStageTheBuildDoesNotBuildCannotBeAwaited() async throws {
        let board = StageBoard(building: [0])
        await #expect { try await board.result(of: 3) } throws: { "\($0)".contains("not part of this build") }
    }
}
