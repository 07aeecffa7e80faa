import AtollCore
import AtollOCI
import AtollStorage
import Foundation
import Hummingbird
import Synchronization

/// A request path of the distribution API, with the repository name checked.
enum Route: Equatable {
    case catalog
    case tags(String)
    case manifest(String, String)
    case blob(String, String)
    case startUpload(String)
    case upload(String, String)

    /// Parses the path after "/v2/": names may hold slashes, so the kind is read from the end.
    init(path: String) throws {
        guard path.hasPrefix("/v2/") else { throw RegistryError.notFound }
        var parts = path.dropFirst(4).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts == ["_catalog"] {
            self = .catalog
            return
        }
        if parts.last == "" { parts.removeLast() }
        func name(_ count: Int) throws -> String {
            let name = parts.dropLast(count).joined(separator: "/")
            guard RegistryNames.isValidRepository(name) else { throw RegistryError.nameInvalid(name) }
            return name
        }
        let count = parts.count
        if count >= 3, parts[count - 2] == "tags", parts[count - 1] == "list" {
            self = .tags(try name(2))
        } else if count >= 3, parts[count - 2] == "blobs", parts[count - 1] == "uploads" {
            self = .startUpload(try name(2))
        } else if count >= 4, parts[count - 3] == "blobs", parts[count - 2] == "uploads" {
            self = .upload(try name(3), parts[count - 1])
        } else if count >= 3, parts[count - 2] == "manifests" {
            self = .manifest(try name(2), parts[count - 1])
        } else if count >= 3, parts[count - 2] == "blobs" {
            self = .blob(try name(2), parts[count - 1])
        } else {
            throw RegistryError.notFound
        }
    }
}

/// The spec's errors: an HTTP status and a body `{"errors":[{"code","message","detail"}]}`.
enum RegistryError: Error, Equatable {
    case notFound
    case nameInvalid(String)
    case nameUnknown(String)
    case blobUnknown(String)
    case blobUploadUnknown(String)
    case manifestUnknown(String)
    case manifestInvalid(String)
    case manifestBlobUnknown(String)
    case manifestTooLarge(Int)
    case digestInvalid(String)
    case tagInvalid(String)
    case sizeInvalid(String)
    case paginationInvalid(String)
    case unsupported(String)
    case internalError(String)

    var parts: (HTTPResponse.Status, String, String) {
        switch self {
        case .notFound: (.notFound, "NOT_FOUND", "no such endpoint")
        case .nameInvalid(let name): (.badRequest, "NAME_INVALID", "invalid repository name \"\(name)\"")
        case .nameUnknown(let name): (.notFound, "NAME_UNKNOWN", "repository \"\(name)\" is not known")
        case .blobUnknown(let digest): (.notFound, "BLOB_UNKNOWN", "blob \(digest) is not in this repository")
        case .blobUploadUnknown(let id): (.notFound, "BLOB_UPLOAD_UNKNOWN", "no upload session \(id)")
        case .manifestUnknown(let reference): (.notFound, "MANIFEST_UNKNOWN", "manifest \(reference) is not known")
        case .manifestInvalid(let why): (.badRequest, "MANIFEST_INVALID", why)
        case .manifestBlobUnknown(let digest):
            (.badRequest, "MANIFEST_BLOB_UNKNOWN", "the manifest references \(digest), which this repository lacks")
        case .manifestTooLarge(let limit):
            (.contentTooLarge, "SIZE_INVALID", "a manifest may not exceed \(limit) bytes")
        case .digestInvalid(let why): (.badRequest, "DIGEST_INVALID", why)
        case .tagInvalid(let tag): (.badRequest, "TAG_INVALID", "invalid tag \"\(tag)\"")
        case .sizeInvalid(let why): (.badRequest, "SIZE_INVALID", why)
        case .paginationInvalid(let n): (.badRequest, "PAGINATION_NUMBER_INVALID", "invalid page size \"\(n)\"")
        case .unsupported(let what): (.methodNotAllowed, "UNSUPPORTED", "\(what) is not supported")
        case .internalError(let why): (.internalServerError, "UNKNOWN", why)
        }
    }

    func response() -> Response {
        let (status, code, message) = parts
        let body: [String: Any] = ["errors": [["code": code, "message": message, "detail": NSNull()]]]
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Upload sessions in progress, by ID. A session belongs to one repository; its bytes go
/// straight into a content-store writer, hashed on the way, and vanish with it when dropped.
final class UploadSessions: Sendable {
    final class Session: @unchecked Sendable {
        let repository: String
        let writer: ContentWriter
        private let gate = AsyncGate()
        /// When a request last touched it (seconds since the epoch).
        let lastUse = Atomic<Double>(Date().timeIntervalSince1970)

        init(repository: String, writer: ContentWriter) {
            self.repository = repository
            self.writer = writer
        }

        var written: Int64 { writer.written }

        /// Runs `body` with no other request of this session running.
        func exclusive<T: Sendable>(_ body: () async throws -> T) async throws -> T {
            await gate.enter()
            defer { lastUse.store(Date().timeIntervalSince1970, ordering: .relaxed) }
            do {
                let value = try await body()
                await gate.leave()
                return value
            } catch {
                await gate.leave()
                throw error
            }
        }
    }

    private let sessions = Mutex<[String: Session]>([:])
    /// A session untouched this long is abandoned: its bytes are dropped.
    static let idleLimit: Double = 3600

    func start(repository: String, writer: ContentWriter) throws -> String {
        let now = Date().timeIntervalSince1970
        let idle = sessions.withLock { map in
            map.filter { now - $0.value.lastUse.load(ordering: .relaxed) > Self.idleLimit }.map(\.key)
        }
        for id in idle { drop(id) }
        let id = UUID().uuidString.lowercased()
        sessions.withLock { $0[id] = Session(repository: repository, writer: writer) }
        return id
    }

    func session(_ id: String, repository: String) throws -> Session {
        guard let session = sessions.withLock({ $0[id] }), session.repository == repository else {
            throw RegistryError.blobUploadUnknown(id)
        }
        return session
    }

    func cancel(_ id: String, repository: String) throws {
        _ = try session(id, repository: repository)
        drop(id)
    }

    /// Forgets a session; its writer's temporary file goes unless it was committed.
    func drop(_ id: String) {
        let session = sessions.withLock { $0.removeValue(forKey: id) }
        session?.writer.abort()
    }
}

/// A FIFO mutual exclusion for async code.
actor AsyncGate {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func enter() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }
}

/// What a pushed manifest must be: JSON of one known kind, unambiguous (CVE-2021-41190: a
/// document that is both a manifest and an index, or whose mediaType disagrees with the
/// Content-Type, is refused), referencing blobs or manifests by digest.
enum ManifestCheck {
    static let imageTypes: Set<String> = [
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
    ]
    static let indexTypes: Set<String> = [
        "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    ]

    /// The media type to serve it with and the digests it references.
    static func check(_ bytes: [UInt8], contentType: String?) throws -> (String, [Digest]) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw RegistryError.manifestInvalid("the manifest is not a JSON object")
        }
        let declared = object["mediaType"] as? String
        let isIndex = object["manifests"] != nil
        let isImage = object["layers"] != nil || object["config"] != nil
        if isIndex && isImage {
            throw RegistryError.manifestInvalid("the document is both an image manifest and an index (ambiguous)")
        }
        if let declared, let contentType, declared != contentType {
            throw RegistryError.manifestInvalid(
                "the manifest's mediaType \(declared) differs from its Content-Type \(contentType)")
        }
        guard let mediaType = declared ?? contentType ?? (isIndex ? "application/vnd.oci.image.index.v1+json" : nil)
        else {
            throw RegistryError.manifestInvalid("the manifest has no mediaType and the request no Content-Type")
        }
        guard imageTypes.contains(mediaType) || indexTypes.contains(mediaType) else {
            throw RegistryError.manifestInvalid("unsupported manifest media type \(mediaType)")
        }
        if indexTypes.contains(mediaType) ? isImage : isIndex {
            throw RegistryError.manifestInvalid("the document's fields do not match its media type \(mediaType)")
        }
        var descriptors: [[String: Any]] = []
        if indexTypes.contains(mediaType) {
            descriptors = object["manifests"] as? [[String: Any]] ?? []
        } else {
            guard let config = object["config"] as? [String: Any] else {
                throw RegistryError.manifestInvalid("an image manifest needs a config descriptor")
            }
            descriptors = [config] + (object["layers"] as? [[String: Any]] ?? [])
        }
        let digests = try descriptors.map { descriptor -> Digest in
            guard let text = descriptor["digest"] as? String, let digest = try? Digest(parsing: text) else {
                throw RegistryError.manifestInvalid("a descriptor lacks a valid sha256 digest")
            }
            return digest
        }
        return (mediaType, digests)
    }
}
