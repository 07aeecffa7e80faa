import AtollCore
import Foundation
import Testing

@testable import AtollOCI

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A config as Docker 20.10 writes it: nulls for unset lists, members Atoll does not model.
private let dockerConfigText = """
    {
      "architecture": "amd64",
      "config": {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": false,
        "ExposedPorts": { "80/tcp": {} },
        "Tty": false,
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.25.3"],
        "Cmd": null,
        "Healthcheck": {
          "Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
          "Interval": 30000000000,
          "Timeout": null,
          "Retries": 3
        },
        "ArgsEscaped": true,
        "Image": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
        "Volumes": null,
        "WorkingDir": "",
        "Entrypoint": ["/docker-entrypoint.sh"],
        "OnBuild": null,
        "Labels": { "maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>" },
        "StopSignal": "SIGQUIT"
      },
      "container": "4a1f3bd1c2a0",
      "container_config": { "Cmd": ["/bin/sh", "-c", "#(nop) CMD [\\"nginx\\"]"] },
      "created": "2024-01-26T23:44:25.6342322Z",
      "docker_version": "20.10.23",
      "history": [
        { "created": "2024-01-11T01:20:18.263596557Z", "created_by": "/bin/sh -c #(nop) ADD file:0f1c in / " },
        { "created": "2024-01-11T01:20:18.708545558Z", "created_by": "/bin/sh -c #(nop)  CMD [\\"bash\\"]", "empty_layer": true }
      ],
      "os": "linux",
      "rootfs": {
        "type": "layers",
        "diff_ids": ["sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"]
      }
    }
    """

@Suite struct ImageConfigTests {
    @Test func dockerConfigWithNullsDecodes() throws {
        let c = try ImageConfig.parse(data: bytes(dockerConfigText))
        #expect(c.architecture == "amd64" && c.os == "linux")
        let run = try #require(c.config)
        #expect(run.cmd == nil)
        #expect(run.volumes == nil)
        #expect(run.onBuild == nil)
        #expect(run.user == "")
        #expect(run.entrypoint == ["/docker-entrypoint.sh"])
        #expect(run.exposedPorts == ["80/tcp": EmptyObject()])
        #expect(run.env?.count == 2)
        #expect(run.argsEscaped == true)
        #expect(run.stopSignal == "SIGQUIT")
        #expect(run.healthcheck?.test == ["CMD-SHELL", "curl -f http://localhost/ || exit 1"])
        #expect(run.healthcheck?.interval == 30_000_000_000)
        #expect(run.healthcheck?.timeout == nil)
        #expect(run.healthcheck?.retries == 3)
        #expect(c.rootfs.type == "layers")
        #expect(c.rootfs.diffIDs.map(\.hex) == ["e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"])
        #expect(c.history?.count == 2)
        #expect(c.history?[1].emptyLayer == true)
        #expect(c.history?[0].emptyLayer == nil)
        #expect(c.history?[1].createdBy == "/bin/sh -c #(nop)  CMD [\"bash\"]")
        #expect(c.created == "2024-01-26T23:44:25.6342322Z")
    }

    @Test func everyOptionalAcceptsNull() throws {
        let text = """
            {"created":null,"author":null,"architecture":"arm64","os":"linux","variant":null,
             "os.version":null,"os.features":null,"comment":null,
             "config":{"User":null,"ExposedPorts":null,"Env":null,"Entrypoint":null,"Cmd":null,
               "Volumes":null,"WorkingDir":null,"Labels":null,"StopSignal":null,"ArgsEscaped":null,
               "Healthcheck":{"Test":null,"Interval":null,"Timeout":null,"StartPeriod":null,
                 "StartInterval":null,"Retries":null},
               "OnBuild":null,"Shell":null},
             "rootfs":{"type":"layers","diff_ids":null},
             "history":[{"created":null,"created_by":null,"author":null,"comment":null,"empty_layer":null}]}
            """
        let c = try ImageConfig.parse(data: bytes(text))
        #expect(c.created == nil && c.variant == nil && c.osVersion == nil)
        #expect(c.config == ImageConfig.Config(healthcheck: ImageConfig.Healthcheck()))
        #expect(c.rootfs.diffIDs.isEmpty)
        #expect(c.history == [ImageConfig.History()])
        #expect(!String(decoding: try c.canonicalJSON(), as: UTF8.self).contains("null"))
    }

    @Test func nullAndEmptyListsStayDistinct() throws {
        let empty = try ImageConfig.parse(
            data: bytes(
                #"{"architecture":"amd64","os":"linux","config":{"Cmd":[]},"rootfs":{"type":"layers","diff_ids":[]}}"#))
        let null = try ImageConfig.parse(
            data: bytes(
                #"{"architecture":"amd64","os":"linux","config":{"Cmd":null},"rootfs":{"type":"layers","diff_ids":[]}}"#
            ))
        #expect(empty.config?.cmd == [])
        #expect(null.config?.cmd == nil)
        #expect(String(decoding: try empty.canonicalJSON(), as: UTF8.self).contains(#""Cmd":[]"#))
        #expect(!String(decoding: try null.canonicalJSON(), as: UTF8.self).contains("Cmd"))
    }

    @Test func canonicalJSONIsSortedAndStable() throws {
        let diff = try Digest(hex: String(repeating: "a", count: 64))
        let config = ImageConfig(
            created: "2024-01-26T23:44:25Z", architecture: "amd64", os: "linux",
            config: ImageConfig.Config(
                exposedPorts: ["80/tcp": EmptyObject()], env: ["A=1"], cmd: ["sh"], workingDir: "/srv",
                labels: ["z": "1", "a": "2"]),
            rootfs: ImageConfig.RootFS(diffIDs: [diff]),
            history: [ImageConfig.History(createdBy: "import", emptyLayer: false)])
        let text = String(decoding: try config.canonicalJSON(), as: UTF8.self)
        let want =
            #"{"architecture":"amd64","config":{"Cmd":["sh"],"Env":["A=1"],"ExposedPorts":{"80/tcp":{}},"Labels":{"a":"2","z":"1"},"WorkingDir":"/srv"},"created":"2024-01-26T23:44:25Z","history":[{"created_by":"import","empty_layer":false}],"os":"linux","rootfs":{"diff_ids":["sha256:\#(diff.hex)"],"type":"layers"}}"#
        #expect(text == want)
        #expect(try config.canonicalJSON() == Array(want.utf8))
        #expect(try ImageConfig.parse(data: Array(want.utf8)) == config)
    }

    @Test func dockerConfigRoundTripsThroughCanonicalJSON() throws {
        let c = try ImageConfig.parse(data: bytes(dockerConfigText))
        let again = try ImageConfig.parse(data: try c.canonicalJSON())
        #expect(again == c)
        let text = String(decoding: try c.canonicalJSON(), as: UTF8.self)
        #expect(!text.contains("container_config"))
        #expect(text.contains(#""os.version""#) == false)
    }

    @Test func missingRootFSIsAnError() {
        let error = #expect(throws: AtollError.self) {
            try ImageConfig.parse(data: bytes(#"{"architecture":"amd64","os":"linux"}"#))
        }
        #expect(error?.message.contains("rootfs") == true)
    }

    @Test func createdParsesAsRFC3339() throws {
        let c = try ImageConfig.parse(data: bytes(dockerConfigText))
        let date = try #require(c.createdDate)
        #expect(abs(date.timeIntervalSince1970 - 1_706_312_665.6342322) < 1e-6)
        #expect(c.history?[0].createdDate != nil)
    }

    @Test func rfc3339HandlesOffsetsAndRejectsJunk() {
        #expect(RFC3339.parse("2000-02-29T12:00:00+02:00")?.timeIntervalSince1970 == 951_818_400)
        #expect(RFC3339.parse("1969-12-31T23:59:59Z")?.timeIntervalSince1970 == -1)
        #expect(RFC3339.parse("1970-01-01T00:00:00.5z")?.timeIntervalSince1970 == 0.5)
        #expect(RFC3339.parse("2024-01-26t23:44:25-00:30")?.timeIntervalSince1970 == 1_706_314_465)
        for bad in [
            "", "2024-01-26", "2024-01-26T23:44:25", "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z",
            "2024-01-26T24:00:00Z", "2024-01-26T23:44:25.Z", "2024-01-26T23:44:25Zjunk", "2024-1-26T23:44:25Z",
        ] {
            #expect(RFC3339.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func platformComesFromTheConfig() {
        let c = ImageConfig(architecture: "arm64", os: "linux", variant: "v8", rootfs: ImageConfig.RootFS(diffIDs: []))
        #expect(c.platform.description == "linux/arm64/v8")
    }
}
