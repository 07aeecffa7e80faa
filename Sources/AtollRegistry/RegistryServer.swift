import AtollCore
import AtollOCI
import AtollStorage
import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import Logging
import Synchronization

/// The OCI distribution API over the host's content store (`atolld --registry-addr`): blob
/// uploads (monolithic, chunked, resumable), cross-repository mounts, blobs with ranges,
/// manifests by tag and digest, tag lists and the catalog with pagination, deletes — with the
/// spec's status codes and error bodies. Nothing becomes visible before its digest is verified.
public struct RegistryServer: Sendable {
    public static let manifestLimit = 4 << 20
    /// The largest blob accepted (a layer, uncompressed or not).
    public static let blobLimit: Int64 = 64 << 30

    let store: RegistryStore
    let uploads = UploadSessions()
    let logger = Logger(label: "atoll.registry")

    public init(store: RegistryStore) { self.store = store }

    /// Serves on `host:port` until the task is cancelled.
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) async -> Void = { _ in })
        async throws
    {
        let router = Router()
        let server = self
        for method in [HTTPRequest.Method.get, .head, .put, .post, .patch, .delete] {
            router.on("/v2", method: method) { request, _ in server.versionCheck(request) }
            router.on("/v2/**", method: method) { request, _ in await server.respond(to: request) }
        }
        let application = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "atoll-registry"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) }, logger: logger)
        try await application.run()
    }

    // MARK: - Dispatch

    /// GET /v2/: the API version check clients start with.
    func versionCheck(_ request: Request) -> Response {
        guard request.method == .get || request.method == .head else {
            return RegistryError.unsupported("\(request.method) /v2/").response()
        }
        var headers = HTTPFields()
        headers[.distributionAPIVersion] = "registry/2.0"
        return Self.json([:], headers: headers)
    }

    func respond(to request: Request) async -> Response {
        do {
            let route = try Route(path: request.uri.path)
            var query: [String: String] = [:]
            for (key, value) in request.uri.queryParameters where query[String(key)] == nil {
                query[String(key)] = String(value)
            }
            switch (route, request.method) {
            case (.catalog, .get):
                return try catalog(query)
            case (.tags(let name), .get):
                return try tags(name, query)
            case (.manifest(let name, let reference), .get), (.manifest(let name, let reference), .head):
                return try getManifest(name, reference, head: request.method == .head)
            case (.manifest(let name, let reference), .put):
                return try await putManifest(name, reference, request)
            case (.manifest(let name, let reference), .delete):
                return try deleteManifest(name, reference)
            case (.blob(let name, let digest), .get), (.blob(let name, let digest), .head):
                return try getBlob(name, digest, request)
            case (.blob(let name, let digest), .delete):
                guard try store.unlinkBlob(name, try Self.digest(digest)) else {
                    throw RegistryError.blobUnknown(digest)
                }
                return Response(status: .accepted)
            case (.startUpload(let name), .post):
                return try await startUpload(name, request, query)
            case (.upload(let name, let id), .get):
                let session = try uploads.session(id, repository: name)
                return Self.uploadResponse(.noContent, name, id, session.written)
            case (.upload(let name, let id), .patch):
                return try await patchUpload(name, id, request)
            case (.upload(let name, let id), .put):
                return try await finishUpload(name, id, request, query)
            case (.upload(let name, let id), .delete):
                try uploads.cancel(id, repository: name)
                return Response(status: .noContent)
            default:
                return RegistryError.unsupported("\(request.method) \(request.uri.path)").response()
            }
        } catch let error as RegistryError {
            return error.response()
        } catch {
            logger.error("registry request \(request.method) \(request.uri.path) failed: \(error)")
            return RegistryError.internalError("\(error)").response()
        }
    }

    // MARK: - Catalog and tags

    func catalog(_ query: [String: String]) throws -> Response {
        let limit = try Self.pageSize(query)
        let last = query["last"]
        let (names, more) = try store.repositories(limit: limit, after: last)
        var headers = HTTPFields()
        if more, let limit, let next = names.last {
            headers[.registryLink] = "</v2/_catalog?n=\(limit)&last=\(next)>; rel=\"next\""
        }
        return Self.json(["repositories": names], headers: headers)
    }

    func tags(_ name: String, _ query: [String: String]) throws -> Response {
        let limit = try Self.pageSize(query)
        guard let (tags, more) = try store.tags(name, limit: limit, after: query["last"]) else {
            throw RegistryError.nameUnknown(name)
        }
        var headers = HTTPFields()
        if more, let limit, let next = tags.last {
            headers[.registryLink] = "</v2/\(name)/tags/list?n=\(limit)&last=\(next)>; rel=\"next\""
        }
        return Self.json(["name": name, "tags": tags], headers: headers)
    }

    // MARK: - Manifests

    func getManifest(_ name: String, _ reference: String, head: Bool) throws -> Response {
        guard let entry = try store.manifest(name, reference: reference), store.content.contains(entry.digest) else {
            throw RegistryError.manifestUnknown(reference)
        }
        var headers = HTTPFields()
        headers[.contentType] = entry.mediaType
        headers[.contentLength] = String(entry.size)
        headers[.dockerContentDigest] = entry.digest.description
        if head { return Response(status: .ok, headers: headers) }
        let bytes = try store.content.read(entry.digest, limit: Self.manifestLimit)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Checks the manifest (size, JSON, one unambiguous kind, everything it references present
    /// in this repository), stores it, then records it and the tag in one transaction.
    func putManifest(_ name: String, _ reference: String, _ request: Request) async throws -> Response {
        let bytes = try await Self.collect(request.body, limit: Self.manifestLimit)
        let digest = Digest.sha256(of: bytes)
        var tag: String?
        if reference.contains(":") {
            guard try Self.digest(reference) == digest else {
                throw RegistryError.digestInvalid("the manifest's digest is \(digest), not \(reference)")
            }
        } else {
            guard RegistryNames.isValidTag(reference) else { throw RegistryError.tagInvalid(reference) }
            tag = reference
        }
        let contentType = request.headers[.contentType]?.split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        let (mediaType, references) = try ManifestCheck.check(bytes, contentType: contentType)
        for referenced in references where !(try store.hasBlob(name, referenced) || store.hasManifest(name, referenced))
        {
            throw RegistryError.manifestBlobUnknown(referenced.description)
        }
        try store.publish {
            try store.content.ingest(bytes: bytes, expected: digest)
            try store.putManifest(name, .init(digest: digest, mediaType: mediaType, size: Int64(bytes.count)), tag: tag)
        }
        var headers = HTTPFields()
        headers[.location] = "/v2/\(name)/manifests/\(digest)"
        headers[.dockerContentDigest] = digest.description
        return Response(status: .created, headers: headers)
    }

    func deleteManifest(_ name: String, _ reference: String) throws -> Response {
        if reference.contains(":") {
            guard try store.deleteManifest(name, try Self.digest(reference)) else {
                throw RegistryError.manifestUnknown(reference)
            }
        } else {
            guard try store.deleteTag(name, reference) else { throw RegistryError.manifestUnknown(reference) }
        }
        return Response(status: .accepted)
    }

    // MARK: - Blobs

    func getBlob(_ name: String, _ digestText: String, _ request: Request) throws -> Response {
        let digest = try Self.digest(digestText)
        guard try store.hasBlob(name, digest) || store.hasManifest(name, digest) else {
            throw RegistryError.blobUnknown(digestText)
        }
        let size = try store.content.info(digest).size
        var headers = HTTPFields()
        headers[.dockerContentDigest] = digest.description
        headers[.contentType] = "application/octet-stream"
        headers[.acceptRanges] = "bytes"
        var range = Int64(0)..<size
        var status = HTTPResponse.Status.ok
        if let header = request.headers[.range] {
            guard let requested = Self.byteRange(header, size: size) else {
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            }
            range = requested
            status = .partialContent
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)"
        }
        headers[.contentLength] = String(range.count)
        if request.method == .head { return Response(status: status, headers: headers) }
        let file = try store.content.open(digest)
        let span = range
        let body = ResponseBody(contentLength: Int(span.count)) { writer in
            var offset = span.lowerBound
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while offset < span.upperBound {
                let wanted = Int(min(Int64(buffer.count), span.upperBound - offset))
                let count = buffer.withUnsafeMutableBytes {
                    pread(file.rawValue, $0.baseAddress, wanted, off_t(offset))
                }
                guard count > 0 else { throw RegistryError.internalError("blob \(digest) ended early") }
                try await writer.write(ByteBuffer(bytes: buffer[0..<count]))
                offset += Int64(count)
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    // MARK: - Uploads

    /// POST …/blobs/uploads/: a cross-repository mount (`mount`, `from`), a monolithic upload
    /// (`digest` and the body), or a new session.
    func startUpload(_ name: String, _ request: Request, _ query: [String: String]) async throws
        -> Response
    {
        if let mount = query["mount"], let from = query["from"] {
            let digest = try Self.digest(mount)
            if RegistryNames.isValidRepository(from), try store.hasBlob(from, digest) {
                try store.publish { try store.linkBlob(name, digest) }
                return Self.blobCreated(name, digest)
            }
            // Not mountable: start a session, as the spec says.
        }
        if let digestText = query["digest"] {
            let digest = try Self.digest(digestText)
            let writer = try store.content.writer(limit: Self.blobLimit)
            do {
                try await Self.stream(request.body, into: writer)
                try store.publish {
                    try Self.commit(writer, verifying: digest)
                    try store.linkBlob(name, digest)
                }
            } catch {
                writer.abort()
                throw error
            }
            return Self.blobCreated(name, digest)
        }
        let id = try uploads.start(repository: name, writer: store.content.writer(limit: Self.blobLimit))
        return Self.uploadResponse(.accepted, name, id, 0)
    }

    /// PATCH: appends a chunk; a Content-Range must start where the upload stands.
    func patchUpload(_ name: String, _ id: String, _ request: Request) async throws -> Response {
        let session = try uploads.session(id, repository: name)
        return try await session.exclusive {
            if let header = request.headers[.contentRange] {
                let start = header.split(separator: "-").first.flatMap {
                    Int64($0.trimmingCharacters(in: .whitespaces))
                }
                guard start == session.written else {
                    return Self.uploadResponse(.rangeNotSatisfiable, name, id, session.written)
                }
            }
            do {
                try await Self.stream(request.body, into: session.writer)
            } catch {
                uploads.drop(id)
                throw error
            }
            return Self.uploadResponse(.accepted, name, id, session.written)
        }
    }

    /// PUT ?digest=: the last chunk (if any), then the digest check and the blob's appearance.
    func finishUpload(
        _ name: String, _ id: String, _ request: Request, _ query: [String: String]
    ) async throws -> Response {
        let session = try uploads.session(id, repository: name)
        guard let digestText = query["digest"] else {
            throw RegistryError.digestInvalid("the upload's last PUT must name the digest")
        }
        let digest = try Self.digest(digestText)
        return try await session.exclusive {
            defer { uploads.drop(id) }
            try await Self.stream(request.body, into: session.writer)
            try store.publish {
                try Self.commit(session.writer, verifying: digest)
                try store.linkBlob(name, digest)
            }
            return Self.blobCreated(name, digest)
        }
    }

    // MARK: - Helpers

    static func stream(_ body: RequestBody, into writer: ContentWriter) async throws {
        do {
            for try await buffer in body {
                try buffer.withUnsafeReadableBytes { try writer.write($0) }
            }
        } catch let error as AtollError where error.code == .resourceExhausted {
            throw RegistryError.sizeInvalid(error.message)
        }
    }

    static func commit(_ writer: ContentWriter, verifying digest: Digest) throws {
        do {
            try writer.commit(verifying: digest)
        } catch let error as AtollError where error.code == .dataLoss {
            throw RegistryError.digestInvalid(error.message)
        }
    }

    static func collect(_ body: RequestBody, limit: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await buffer in body {
            guard bytes.count + buffer.readableBytes <= limit else {
                throw RegistryError.manifestTooLarge(limit)
            }
            bytes += buffer.readableBytesView
        }
        return bytes
    }

    static func digest(_ text: String) throws -> Digest {
        do { return try Digest(parsing: text) } catch {
            throw RegistryError.digestInvalid("\"\(text)\" is not a sha256 digest")
        }
    }

    static func pageSize(_ query: [String: String]) throws -> Int? {
        guard let text = query["n"] else { return nil }
        guard let n = Int(text), n >= 0 else { throw RegistryError.paginationInvalid(text) }
        return n
    }

    /// `bytes=A-B`, `bytes=A-` or `bytes=-N`; nil when it does not fit the blob.
    static func byteRange(_ header: String, size: Int64) -> Range<Int64>? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let parts = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let suffix = Int64(parts[1]), suffix > 0 else { return nil }
            return max(0, size - suffix)..<size
        }
        guard let start = Int64(parts[0]), start < size else { return nil }
        let end = parts[1].isEmpty ? size - 1 : Int64(parts[1]).map { min($0, size - 1) }
        guard let end, end >= start else { return nil }
        return start..<(end + 1)
    }

    static func blobCreated(_ name: String, _ digest: Digest) -> Response {
        var headers = HTTPFields()
        headers[.location] = "/v2/\(name)/blobs/\(digest)"
        headers[.dockerContentDigest] = digest.description
        return Response(status: .created, headers: headers)
    }

    static func uploadResponse(_ status: HTTPResponse.Status, _ name: String, _ id: String, _ written: Int64)
        -> Response
    {
        var headers = HTTPFields()
        headers[.location] = "/v2/\(name)/blobs/uploads/\(id)"
        headers[.range] = "0-\(max(0, written - 1))"
        headers[.dockerUploadUUID] = id
        headers[.contentLength] = "0"
        return Response(status: status, headers: headers)
    }

    static func json(_ object: [String: Any], headers: HTTPFields = HTTPFields()) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension HTTPField.Name {
    static let dockerContentDigest = known("Docker-Content-Digest")
    static let dockerUploadUUID = known("Docker-Upload-UUID")
    static let registryLink = known("Link")
    static let distributionAPIVersion = known("Docker-Distribution-API-Version")

    /// A header name written in this file, valid by construction.
    private static func known(_ name: String) -> Self {
        guard let field = Self(name) else { preconditionFailure("invalid header name \(name)") }
        return field
    }
}
