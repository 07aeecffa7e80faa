import Foundation
import Glibc
import Testing

/// The embedded registry (`atolld --registry-addr`) against tools nobody here wrote (skopeo) and
/// against the distribution spec's requests, status codes and error bodies, byte for byte.
@Suite(.serialized) struct RegistryTests {
    /// A daemon serving the registry on a free port, and that port.
    static func registryDaemon() throws -> (DaemonFixture, Int) {
        let daemon = try DaemonFixture(extraArguments: ["--registry-addr", "127.0.0.1:0"])
        do {
            return (daemon, try port(of: daemon))
        } catch {
            daemon.shutdown()
            throw error
        }
    }

    @Test func skopeoPushesAndPullsAndTheDigestsStayTheSame() throws {
        let (daemon, port) = try Self.registryDaemon()
        defer { daemon.shutdown() }
        let registry = "127.0.0.1:\(port)"
        let push = DaemonFixture.shell(
            "skopeo copy --dest-tls-verify=false docker-archive:\(BusyboxArchive.path) docker://\(registry)/library/busybox:1"
        )
        #expect(push.status == 0, "\(push.stderr)")
        // Two pushes at once of images sharing their layers, into other repositories.
        let concurrent = DaemonFixture.shell(
            """
            skopeo copy --dest-tls-verify=false docker-archive:\(BusyboxArchive.path) docker://\(registry)/a/bb:x & a=$!
            skopeo copy --dest-tls-verify=false docker-archive:\(BusyboxArchive.path) docker://\(registry)/b/bb:y & b=$!
            wait $a && wait $b
            """)
        #expect(concurrent.status == 0, "\(concurrent.stderr)")

        let inspect = DaemonFixture.shell(
            "skopeo inspect --tls-verify=false --format '{{.Digest}}' docker://\(registry)/library/busybox:1")
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let pulled = "\(daemon.directory)/pulled"
        let pull = DaemonFixture.shell(
            "skopeo copy -q --src-tls-verify=false docker://\(registry)/b/bb:y dir:\(pulled) && sha256sum \(pulled)/manifest.json"
        )
        #expect(pull.status == 0, "\(pull.stderr)")
        // The manifest pulled is the manifest pushed, to the byte: same digest.
        let digest = inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(digest == "sha256:" + (pull.stdout.split(separator: " ").first.map(String.init) ?? ""))
        // Every blob pulled matches its name.
        let verify = DaemonFixture.shell(
            "cd \(pulled) && for f in *; do case $f in manifest.json|version) continue;; esac; [ \"$(sha256sum $f | cut -c1-64)\" = \"$f\" ] || exit 1; done"
        )
        #expect(verify.status == 0, "a pulled blob does not match its digest")

        let catalog = DaemonFixture.shell("curl -s http://\(registry)/v2/_catalog").stdout
        #expect(catalog == #"{"repositories":["a/bb","b/bb","library/busybox"]}"#, "\(catalog)")

        // Garbage collection (at start, and after image removals) keeps what repositories hold.
        daemon.stop()
        try daemon.start()
        let newPort = try Self.port(of: daemon)
        let again = DaemonFixture.shell(
            "skopeo copy --src-tls-verify=false docker://127.0.0.1:\(newPort)/library/busybox:1 dir:\(daemon.directory)/again"
        )
        #expect(again.status == 0, "\(again.stderr)")
    }

    @Test func theProtocolAnswersAsTheSpecSays() throws {
        let (daemon, port) = try Self.registryDaemon()
        defer { daemon.shutdown() }
        let script = "\(daemon.directory)/protocol.py"
        try Self.protocolScript.write(toFile: script, atomically: false, encoding: .utf8)
        let result = DaemonFixture.shell("python3 \(script) http://127.0.0.1:\(port)")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.hasSuffix("all checks passed\n"), "\(result.stdout)")
        // Nothing rejected was stored: no temporary upload file remains, and only the blobs the
        // script pushed successfully are in the store.
        let ingest = (try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.root)/content/ingest")) ?? []
        #expect(ingest.isEmpty, "\(ingest)")
        let expected = result.stdout.split(separator: "\n").filter { $0.hasPrefix("stored ") }.map {
            String($0.dropFirst(7))
        }
        #expect(daemon.blobs() == expected.sorted(), "\(daemon.blobs()) vs \(expected)")
    }

    @Test func aBadAddressIsAClearError() throws {
        let daemon = try DaemonFixture(extraArguments: ["--registry-addr", "nowhere"], start: false)
        defer { daemon.shutdown() }
        #expect(throws: FixtureError.self) { try daemon.start() }
        #expect(
            daemon.daemonLog().contains("invalid --registry-addr \"nowhere\": want HOST:PORT"), "\(daemon.daemonLog())")
    }

    /// The port the registry last reported in the daemon's log (it binds port 0).
    static func port(of daemon: DaemonFixture) throws -> Int {
        let log = daemon.daemonLog()
        let matches = log.ranges(of: #/http://127\.0\.0\.1:(\d+)/v2//#).last
        guard let matches, let port = Int(log[matches].dropFirst("http://127.0.0.1:".count).dropLast(4)) else {
            throw FixtureError("the registry did not report its port: \(log)")
        }
        return port
    }

    /// Speaks HTTP to the registry with the standard library only; prints "stored DIGEST" for
    /// each blob it expects in the store, exits non-zero on the first failed check.
    static let protocolScript = #"""
        import hashlib, json, sys, urllib.request, urllib.error
        base = sys.argv[1]
        stored = set()

        def call(method, path, body=None, headers=None):
            request = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
            try:
                with urllib.request.urlopen(request) as response:
                    return response.status, dict(response.headers), response.read()
            except urllib.error.HTTPError as error:
                return error.code, dict(error.headers), error.read()

        def check(condition, what):
            if not condition:
                print("FAILED:", what)
                sys.exit(1)

        def error_code(body):
            return json.loads(body)["errors"][0]["code"]

        def sha(data):
            return "sha256:" + hashlib.sha256(data).hexdigest()

        status, headers, body = call("GET", "/v2/")
        check(status == 200 and headers.get("Docker-Distribution-API-Version") == "registry/2.0", "version check")

        # Chunked upload, with a wrong Content-Range refused and the status readable.
        blob = b"layer-bytes-" * 1000
        digest = sha(blob)
        status, headers, _ = call("POST", "/v2/test/app/blobs/uploads/")
        check(status == 202 and headers["Location"].startswith("/v2/test/app/blobs/uploads/"), "start upload")
        location = headers["Location"]
        status, headers, _ = call("PATCH", location, blob[:5000], {"Content-Range": "0-4999", "Content-Type": "application/octet-stream"})
        check(status == 202 and headers["Range"] == "0-4999", "first chunk: %s %s" % (status, headers.get("Range")))
        status, headers, _ = call("PATCH", location, blob[5000:6000], {"Content-Range": "4000-4999"})
        check(status == 416, "a chunk at the wrong offset is refused: %s" % status)
        status, headers, _ = call("GET", location)
        check(status == 204 and headers["Range"] == "0-4999", "upload status")
        status, headers, _ = call("PATCH", location, blob[5000:], {"Content-Range": "5000-%d" % (len(blob) - 1)})
        check(status == 202, "second chunk")
        status, headers, _ = call("PUT", location + "?digest=" + digest)
        check(status == 201 and headers["Docker-Content-Digest"] == digest, "complete upload: %s" % status)
        stored.add(digest)
        status, _, _ = call("GET", location)
        check(status == 404, "a finished session is gone")

        # Blobs: HEAD, GET, ranges.
        status, headers, _ = call("HEAD", "/v2/test/app/blobs/" + digest)
        check(status == 200 and headers["Content-Length"] == str(len(blob)), "HEAD blob")
        status, headers, body = call("GET", "/v2/test/app/blobs/" + digest, headers={"Range": "bytes=10-19"})
        check(status == 206 and body == blob[10:20] and headers["Content-Range"] == "bytes 10-19/%d" % len(blob), "range")
        status, _, _ = call("GET", "/v2/test/app/blobs/" + digest, headers={"Range": "bytes=999999-"})
        check(status == 416, "range past the end")
        status, _, body = call("GET", "/v2/other/blobs/" + digest)
        check(status == 404 and error_code(body) == "BLOB_UNKNOWN", "blobs are per repository")

        # A monolithic upload whose digest is wrong stores nothing.
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        status, _, body = call("POST", "/v2/test/app/blobs/uploads/?digest=" + sha(b"something else"), config)
        check(status == 400 and error_code(body) == "DIGEST_INVALID", "digest mismatch: %s" % status)
        status, headers, _ = call("POST", "/v2/test/app/blobs/uploads/?digest=" + sha(config), config)
        check(status == 201, "monolithic upload")
        stored.add(sha(config))

        # Sessions: unknown ones, and one cancelled.
        status, _, body = call("PATCH", "/v2/test/app/blobs/uploads/not-a-session", b"x")
        check(status == 404 and error_code(body) == "BLOB_UPLOAD_UNKNOWN", "unknown session")
        status, headers, _ = call("POST", "/v2/test/app/blobs/uploads/")
        cancelled = headers["Location"]
        call("PATCH", cancelled, b"partial data")
        status, _, _ = call("DELETE", cancelled)
        check(status == 204, "cancel an upload")
        status, _, _ = call("PUT", cancelled + "?digest=" + sha(b"partial data"))
        check(status == 404, "a cancelled session is gone")

        # Cross-repository mount.
        status, headers, _ = call("POST", "/v2/test/mounted/blobs/uploads/?mount=%s&from=test/app" % digest)
        check(status == 201 and headers["Location"] == "/v2/test/mounted/blobs/" + digest, "mount")

        # Manifests: missing blobs, ambiguity, size, tags, digests.
        manifest_type = "application/vnd.oci.image.manifest.v1+json"
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": manifest_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": len(blob)}],
        }).encode()
        status, _, body = call("PUT", "/v2/test/mounted/manifests/v1", manifest, {"Content-Type": manifest_type})
        check(status == 400 and error_code(body) == "MANIFEST_BLOB_UNKNOWN", "a manifest needs its blobs in the repository")
        ambiguous = json.loads(manifest)
        ambiguous["manifests"] = []
        status, _, body = call("PUT", "/v2/test/app/manifests/bad", json.dumps(ambiguous).encode(), {"Content-Type": manifest_type})
        check(status == 400 and error_code(body) == "MANIFEST_INVALID", "an ambiguous manifest (CVE-2021-41190)")
        status, _, body = call("PUT", "/v2/test/app/manifests/bad", manifest, {"Content-Type": "application/vnd.oci.image.index.v1+json"})
        check(status == 400 and error_code(body) == "MANIFEST_INVALID", "mediaType and Content-Type disagree")
        status, _, body = call("PUT", "/v2/test/app/manifests/big", b" " * (5 << 20), {"Content-Type": manifest_type})
        check(status == 413, "a manifest over 4 MiB: %s" % status)
        status, _, body = call("PUT", "/v2/test/app/manifests/" + sha(b"other"), manifest, {"Content-Type": manifest_type})
        check(status == 400 and error_code(body) == "DIGEST_INVALID", "a manifest pushed by the wrong digest")
        for tag in ["v1", "v2", "v3"]:
            status, headers, _ = call("PUT", "/v2/test/app/manifests/" + tag, manifest, {"Content-Type": manifest_type})
            check(status == 201 and headers["Docker-Content-Digest"] == sha(manifest), "put manifest " + tag)
        stored.add(sha(manifest))
        status, headers, body = call("GET", "/v2/test/app/manifests/v2")
        check(status == 200 and body == manifest and headers["Content-Type"] == manifest_type, "get by tag")
        status, headers, body = call("HEAD", "/v2/test/app/manifests/" + sha(manifest))
        check(status == 200 and headers["Docker-Content-Digest"] == sha(manifest), "head by digest")

        # Tags with pagination; catalog.
        status, headers, body = call("GET", "/v2/test/app/tags/list?n=2")
        check(json.loads(body)["tags"] == ["v1", "v2"] and headers["Link"] == '</v2/test/app/tags/list?n=2&last=v2>; rel="next"', "page 1")
        status, headers, body = call("GET", "/v2/test/app/tags/list?n=2&last=v2")
        check(json.loads(body)["tags"] == ["v3"] and "Link" not in headers, "page 2")
        status, _, body = call("GET", "/v2/nothing/here/tags/list")
        check(status == 404 and error_code(body) == "NAME_UNKNOWN", "unknown repository")
        status, _, body = call("GET", "/v2/_catalog")
        check(json.loads(body)["repositories"] == ["test/app"], "catalog: %s" % body)

        # Bad names.
        for name in ["Test/app", "a/../b", "a//b", "-a", "a_-b"]:
            status, _, body = call("POST", "/v2/%s/blobs/uploads/" % name)
            check(status in (400, 404) and error_code(body) in ("NAME_INVALID", "NOT_FOUND"), "bad name " + name)
        status, _, body = call("PUT", "/v2/test/app/manifests/-bad-tag", manifest, {"Content-Type": manifest_type})
        check(status == 400 and error_code(body) == "TAG_INVALID", "bad tag")

        # Deletes.
        status, _, _ = call("DELETE", "/v2/test/app/manifests/v3")
        check(status == 202, "delete a tag")
        status, _, _ = call("DELETE", "/v2/test/app/manifests/" + sha(manifest))
        check(status == 202, "delete a manifest")
        status, _, body = call("GET", "/v2/test/app/manifests/v1")
        check(status == 404 and error_code(body) == "MANIFEST_UNKNOWN", "its tags went with it")
        status, _, _ = call("DELETE", "/v2/test/mounted/blobs/" + digest)
        check(status == 202, "delete a blob link")
        status, _, _ = call("HEAD", "/v2/test/mounted/blobs/" + digest)
        check(status == 404, "the link is gone")

        for digest in sorted(stored):
            print("stored " + digest.split(":")[1])
        print("all checks passed")
        """#
}
