import AtollCore
import Foundation
import Testing

@testable import AtollVolumes

struct MountParserTests {
    @Test func volumeFlagForms() throws {
        let named = try MountParser.volumeFlag("data:/var/lib/data:ro,nocopy")
        #expect(named.kind == .volume)
        #expect(named.source == "data")
        #expect(named.target == "/var/lib/data")
        #expect(named.readOnly)
        #expect(named.noCopy)

        let bind = try MountParser.volumeFlag("/srv//www/./:/usr/share/www/../html:rw,rslave,Z")
        #expect(bind.kind == .bind)
        #expect(bind.source == "/srv/www")
        #expect(bind.target == "/usr/share/html")
        #expect(!bind.readOnly)
        #expect(bind.propagation == "rslave")
        #expect(bind.createSource)

        let anonymous = try MountParser.volumeFlag("/cache")
        #expect(anonymous.kind == .volume)
        #expect(anonymous.source.isEmpty)
        #expect(anonymous.target == "/cache")
    }

    @Test(arguments: [
        ("data:/x:ro,rw", "give only one of ro and rw"),
        ("/host:/x:nocopy", "nocopy applies to volumes"),
        ("data:/x:rshared", "applies to bind mounts only"),
        ("data:/x:fast", "unknown mode \"fast\""),
        (":/x", "the source is empty"),
        ("a:b:c:d", "want [SOURCE:]TARGET[:MODE]"),
        ("../up:/x", "invalid volume name \"../up\""),
        ("a/b:/x", "cannot contain \"/\" or \"..\""),
        ("data:relative/path", "must be an absolute path"),
        ("data:/", "cannot mount over the container's root"),
        ("data:/a/..", "cannot mount over the container's root"),
    ])
    func volumeFlagErrors(spec: String, expected: String) {
        #expect {
            try MountParser.volumeFlag(spec)
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func mountFlagForms() throws {
        let volume = try MountParser.mountFlag(
            "type=volume,src=db,dst=/db,readonly,volume-nocopy=true,volume-label=tier=gold,\"volume-opt=o=size=1m,uid=5\",volume-opt=type=tmpfs,volume-opt=device=tmpfs"
        )
        #expect(volume.kind == .volume)
        #expect(volume.source == "db")
        #expect(volume.readOnly)
        #expect(volume.noCopy)
        #expect(volume.volumeLabels == ["tier": "gold"])
        #expect(volume.volumeOptions == ["o": "size=1m,uid=5", "type": "tmpfs", "device": "tmpfs"])

        let bind = try MountParser.mountFlag("type=bind,source=/tmp,target=/host-tmp,bind-propagation=shared,ro=false")
        #expect(bind.kind == .bind)
        #expect(!bind.readOnly)
        #expect(bind.propagation == "shared")
        #expect(!bind.createSource)

        let tmpfs = try MountParser.mountFlag("type=tmpfs,target=/run/x,tmpfs-size=64m,tmpfs-mode=1770")
        #expect(tmpfs.tmpfsOptions == ["nosuid", "nodev", "noexec", "size=67108864", "mode=1770"])

        let anonymous = try MountParser.mountFlag("target=/scratch")
        #expect(anonymous.kind == .volume)
        #expect(anonymous.source.isEmpty)
    }

    @Test(arguments: [
        ("type=bind,source=/no/such/dir-atoll,target=/x", "bind source path does not exist: /no/such/dir-atoll"),
        ("type=bind,source=relative,target=/x", "must be an absolute host path"),
        ("type=tmpfs,source=x,target=/x", "a tmpfs mount takes no source"),
        ("type=volume,source=vol,target=/x,tmpfs-size=1m", "tmpfs-size applies to type=tmpfs only"),
        ("type=bind,source=/tmp,target=/x,volume-nocopy", "volume-nocopy applies to type=volume only"),
        ("type=volume,source=vol,target=/x,volume-driver=nfs", "unknown volume driver \"nfs\""),
        ("type=volume,source=vol,target=/x,volume-opt=bogus=1", "invalid option \"bogus\""),
        ("type=nfs,target=/x", "unknown type \"nfs\""),
        ("type=volume,source=vol", "target is required"),
        ("type=volume,source=vol,target=/x,colour=blue", "unknown key \"colour\""),
        ("type=volume,source=vol,target=/x,readonly=maybe", "takes true or false"),
        ("type=tmpfs,target=/x,tmpfs-mode=999", "octal mode"),
        ("type=volume,\"source=vol,target=/x", "unbalanced double quote"),
        ("type=volume,source=..,target=/x", "invalid volume name"),
    ])
    func mountFlagErrors(spec: String, expected: String) {
        #expect {
            try MountParser.mountFlag(spec)
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func tmpfsFlagKeepsDockersDefaultsUnlessOverridden() throws {
        let plain = try MountParser.tmpfsFlag("/run")
        #expect(plain.tmpfsOptions == ["nodev", "nosuid", "noexec"])
        let custom = try MountParser.tmpfsFlag("/run:exec,size=1m,mode=700,ro")
        #expect(custom.readOnly)
        #expect(custom.tmpfsOptions == ["nodev", "nosuid", "exec", "size=1m", "mode=700"])
        #expect(throws: AtollError.self) { try MountParser.tmpfsFlag("/run:bogus") }
        #expect(throws: AtollError.self) { try MountParser.tmpfsFlag("run") }
    }

    @Test func volumeNames() {
        for good in ["db", "my-volume_1.0", "0abc", String(repeating: "f", count: 64)] {
            #expect((try? VolumeName.validate(good)) != nil, "\(good)")
        }
        for bad in [
            "", "a", "..", ".hidden", "a/b", "a..b", "-dash", "naïve", "a b", String(repeating: "x", count: 256),
        ] {
            #expect(throws: AtollError.self, "\(bad)") { try VolumeName.validate(bad) }
        }
    }

    @Test func localDriverOptions() throws {
        #expect(try LocalVolumeOptions.parse([:]) == nil)
        let tmpfs = try #require(
            try LocalVolumeOptions.parse(["type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=3"]))
        #expect(tmpfs.mountOptions == ["size=1m", "uid=3"])
        #expect(!tmpfs.isBind)
        let bind = try #require(try LocalVolumeOptions.parse(["type": "none", "device": "/tmp", "o": "bind"]))
        #expect(bind.isBind)
        #expect(throws: AtollError.self) { try LocalVolumeOptions.parse(["size": "1g"]) }
        #expect(throws: AtollError.self) { try LocalVolumeOptions.parse(["device": "tmpfs"]) }
        #expect(throws: AtollError.self) { try LocalVolumeOptions.parse(["type": "tmpfs"]) }
        #expect(throws: AtollError.self) { try LocalVolumeOptions.parse(["type": "nosuchfs", "device": "x"]) }
        #expect(throws: AtollError.self) {
            try LocalVolumeOptions.parse(["type": "none", "device": "rel", "o": "bind"])
        }
        #expect(throws: AtollError.self) {
            try LocalVolumeOptions.parse(["type": "none", "device": "/no/such/atoll-dir", "o": "bind"])
        }
    }

    @Test func volumeFilters() throws {
        let volumes: [(record: VolumeRecord, users: [String])] = [
            (VolumeRecord(name: "web-data", labels: ["tier": "front"]), ["c1"]),
            (VolumeRecord(name: "db-data", labels: ["tier": "back", "backup": ""]), []),
            (VolumeRecord(name: "scratch"), []),
        ]
        func names(_ filters: [String]) throws -> [String] {
            try VolumeFilter.apply(filters, to: volumes).map(\.record.name)
        }
        #expect(try names(["dangling=true"]) == ["db-data", "scratch"])
        #expect(try names(["dangling=false"]) == ["web-data"])
        #expect(try names(["name=data"]) == ["web-data", "db-data"])
        #expect(try names(["label=tier"]) == ["web-data", "db-data"])
        #expect(try names(["label=tier=back"]) == ["db-data"])
        #expect(try names(["label!=backup"]) == ["web-data", "scratch"])
        #expect(try names(["driver=local", "dangling=true", "label=tier"]) == ["db-data"])
        #expect(throws: AtollError.self) { try names(["dangling=maybe"]) }
        #expect(throws: AtollError.self) { try names(["colour=blue"]) }
    }
}
