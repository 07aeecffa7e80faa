import AtollVolumes
import Foundation
import Testing

@testable import AtollEngine

struct ContainerModelTests {
    @Test func restartPoliciesParseAsDockerSpellsThem() throws {
        #expect(try RestartPolicy(parsing: "") == .no)
        #expect(try RestartPolicy(parsing: "always").mode == .always)
        #expect(try RestartPolicy(parsing: "unless-stopped").mode == .unlessStopped)
        #expect(try RestartPolicy(parsing: "on-failure:3") == RestartPolicy(mode: .onFailure, maximumRetries: 3))
        #expect(throws: (any Error).self) { try RestartPolicy(parsing: "always:3") }
        #expect(throws: (any Error).self) { try RestartPolicy(parsing: "sometimes") }
        #expect(throws: (any Error).self) { try RestartPolicy(parsing: "on-failure:x") }
    }

    @Test func environmentOverridesReplaceAndDropImageEntries() {
        let merged = ContainerService.mergeEnvironment(
            image: ["PATH=/bin", "A=1", "B=2"], overrides: ["A=3", "B", "C=4"])
        #expect(merged == ["PATH=/bin", "A=3", "C=4"])
    }

    @Test func backoffDoublesAndStopsAtAMinute() {
        #expect(ContainerService.restartDelay(attempt: 0) == .milliseconds(100))
        #expect(ContainerService.restartDelay(attempt: 3) == .milliseconds(800))
        #expect(ContainerService.restartDelay(attempt: 30) == .seconds(60))
    }

    @Test func statusTextReadsLikeDockerPs() {
        var state = ContainerState()
        let now = Date()
        #expect(ContainerService.statusText(state, now: now) == "Created")
        state.status = .exited
        state.exitCode = 3
        state.finishedAt = now.addingTimeInterval(-5)
        #expect(ContainerService.statusText(state, now: now) == "Exited (3) 5 seconds ago")
        state.status = .running
        state.startedAt = now.addingTimeInterval(-180)
        state.health = HealthState(status: .healthy)
        #expect(ContainerService.statusText(state, now: now) == "Up 3 minutes (healthy)")
    }

    @Test func settingsWrittenBeforeMountsExistedStillDecode() throws {
        var settings = ContainerSettings()
        settings.image = "busybox"
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(settings)) as! [String: Any]
        json["mounts"] = nil
        json["volumesFrom"] = nil
        let old = try JSONSerialization.data(withJSONObject: json)
        let decoded = try JSONDecoder().decode(ContainerSettings.self, from: old)
        #expect(decoded == settings)
        #expect(decoded.mounts.isEmpty)

        settings.mounts = [try MountParser.volumeFlag("v1:/data")]
        let roundTrip = try JSONDecoder().decode(ContainerSettings.self, from: JSONEncoder().encode(settings))
        #expect(roundTrip.mounts == settings.mounts)
    }
}
