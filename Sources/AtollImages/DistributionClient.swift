import AsyncHTTPClient
import AtollCore
import AtollOCI
import AtollStorage
import Foundation
import Glibc
import NIOCore
import NIOHTTP1
import Synchronization

/// Where registries are and how to reach them.
public struct RegistryAccess: Sendable {
    /// Registries (HOST[:PORT]) reached over plain HTTP; loopback ones always are.
    public var insecureRegistries: Set<String>
    /// Mirrors (HOST[:PORT]) tried in order before a registry when pulling, by registry domain
    /// ("docker.io" for Docker Hub). Any registry may have mirrors, not only the default one.
    public var mirrors: [String: [String]]

    public init(insecureRegistries: Set<String> = [], mirrors: [String: [String]] = [:]) {
        self.insecureRegistries = insecureRegistries
        self.mirrors = mirrors
    }

    /// Parses `--registry-mirror REGISTRY=MIRROR` values; a mirror given as http://HOST[:PORT]
    /// is also reached over plain HTTP.
    public mutating func addMirrors(_ flags: [String]) throws {
        for flag in flags {
            let parts = flag.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw AtollError.invalidArgument("invalid --registry-mirror \"\(flag)\": want REGISTRY=MIRROR[:PORT]")
            }
            var mirror = parts[1]
            if mirror.hasPrefix("http://") {
                mirror.removeFirst(7)
                insecureRegistries.insert(mirror)
            } else if mirror.hasPrefix("https://") {
                mirror.removeFirst(8)
            }
            while mirror.hasSuffix("/") { mirror.removeLast() }
            guard !mirror.isEmpty, !mirror.contains("/") else {
                throw AtollError.invalidArgument("invalid mirror \"\(parts[1])\": want HOST[:PORT] (no path)")
            }
            let registry = parts[0] == "registry-1.docker.io" ? ImageReference.defaultDomain : parts[0]
            mirrors[registry, default: []].append(mirror)
        }
    }

    /// Plain HTTP only for loopback hosts and registries named insecure; HTTPS (with the
    /// system's trust store) for everything else.
    public func usesPlainHTTP(_ domain: String) -> Bool {
        if insecureRegistries.contains(domain) { return true }
        var host = domain
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") {
            host = String(host[host.index(after: host.startIndex)..<end])
        } else if let colon = host.lastIndex(of: ":") {
            host = String(host[..<colon])
        }
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The API base URL of a registry domain (Docker Hub's API lives elsewhere than its name).
    public func baseURL(_ domain: String) -> String {
        let host = domain == ImageReference.defaultDomain ? "registry-1.docker.io" : domain
        return "\(usesPlainHTTP(domain) ? "http" : "https")://\(host)"
    }
}

/// Credentials for one registry, as `atoll login` stored them.
public struct RegistryCredentials: Sendable, Equatable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// The client side of the distribution API for one repository: anonymous, basic or bearer-token
/// access (the token fetched from the realm a 401 names, then reused), manifests, and blobs
/// streamed into the content store and verified on the way.
final class DistributionClient: Sendable {
    /// The registry, HOST[:PORT] (`docker.io` for Docker Hub).
    let domain: String
    /// The repository path inside it; empty for a client that only logs in.
    let repository: String
    let access: RegistryAccess
    let credentials: RegistryCredentials?
    private let authorization = Mutex<String?>(nil)
    private var http: HTTPClient { Self.sharedHTTP }

    /// One client for every pull: redirects followed (blob storage often lives elsewhere), a
    /// refused connection reported at once rather than retried until the connect timeout.
    static let sharedHTTP: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .follow(max: 5, allowCycles: false),
            timeout: .init(connect: .seconds(10), read: .seconds(120)))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    static let manifestTypes = [
        MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest,
    ]

    /// The scopes a token is asked for besides those a challenge names: this repository's
    /// ("pull", or "pull,push" for a push) and pull on the repositories blobs may be mounted from.
    let scopes: [String]

    /// A client for `reference`'s repository; `mountSources` are other repositories of the same
    /// registry a push may mount blobs from (a token then needs pull access to them too).
    init(
        reference: ImageReference, access: RegistryAccess, credentials: RegistryCredentials?,
        scopeActions: String = "pull", mountSources: [String] = []
    ) {
        self.domain = reference.domain
        self.repository = reference.path
        self.access = access
        self.credentials = credentials
        self.scopes =
            ["repository:\(reference.path):\(scopeActions)"] + mountSources.map { "repository:\($0):pull" }
    }

    /// A client for the registry itself, for `atoll login`.
    init(registry domain: String, access: RegistryAccess, credentials: RegistryCredentials?) {
        self.domain = domain
        self.repository = ""
        self.access = access
        self.credentials = credentials
        self.scopes = []
    }

    var repositoryURL: String { "\(access.baseURL(domain))/v2/\(repository)" }
    private var name: String { "\(domain)/\(repository)" }

    /// Checks the credentials as `docker login` does: the API root (GET /v2/), answering its
    /// challenge with them; a registry that lets anyone in accepts any login.
    func login() async throws {
        let response = try await send("GET", "\(access.baseURL(domain))/v2/", accept: [])
        guard response.status == .ok else {
            if response.status == .unauthorized {
                throw AtollError(.permissionDenied, "login to \(domain) failed: wrong username or password")
            }
            throw try await failure(response, "logging in to \(domain)")
        }
    }

    /// GET a manifest or index by tag or digest: its bytes and the type it was served as.
    func manifest(_ tagOrDigest: String) async throws -> (bytes: [UInt8], mediaType: String?) {
        let response = try await send("GET", "\(repositoryURL)/manifests/\(tagOrDigest)", accept: Self.manifestTypes)
        guard response.status == .ok else {
            throw try await failure(response, "manifest \(name):\(tagOrDigest)")
        }
        var body = try await response.body.collect(upTo: ManifestDocument.maximumSize)
        let bytes = body.readBytes(length: body.readableBytes) ?? []
        return (bytes, response.headers.first(name: "Content-Type"))
    }

    /// Streams a blob into the content store, checking its size and digest as it arrives;
    /// `progress` gets the bytes received so far.
    func fetchBlob(_ descriptor: Descriptor, into content: ContentStore, progress: @Sendable (Int64) -> Void)
        async throws
    {
        let response = try await send("GET", "\(repositoryURL)/blobs/\(descriptor.digest)", accept: [])
        guard response.status == .ok else {
            throw try await failure(response, "blob \(descriptor.digest) of \(name)")
        }
        let writer = try content.writer(expected: descriptor.digest, expectedSize: descriptor.size)
        do {
            var received: Int64 = 0
            for try await buffer in response.body {
                try buffer.withUnsafeReadableBytes { try writer.write($0) }
                received += Int64(buffer.readableBytes)
                progress(received)
            }
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
    }

    // MARK: - Push

    /// Whether the repository has the blob already (HEAD).
    func hasBlob(_ digest: Digest) async throws -> Bool {
        let response = try await send("HEAD", "\(repositoryURL)/blobs/\(digest)", accept: [])
        return response.status == .ok
    }

    /// Uploads a blob from the content store: a session, then one PUT with the whole body
    /// (streamed from the file) and its digest, which the registry verifies.
    /// Asks the registry to mount a blob from another of its repositories (no bytes sent). True
    /// when it did (201); a registry that opens an upload instead (202: it cannot or will not
    /// mount) gets that upload cancelled, and the caller uploads as usual.
    func mountBlob(_ digest: Digest, from repository: String) async throws -> Bool {
        let from = repository.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? repository
        let response = try await send(
            "POST", "\(repositoryURL)/blobs/uploads/?mount=\(digest)&from=\(from)", accept: [])
        switch response.status {
        case .created:
            return true
        case .accepted:
            if let location = response.headers.first(name: "Location") {
                let target = location.hasPrefix("http") ? location : access.baseURL(domain) + location
                _ = try? await send("DELETE", target, accept: [])
            }
            return false
        default:
            return false
        }
    }

    func uploadBlob(_ descriptor: Descriptor, from content: ContentStore, progress: @escaping @Sendable (Int64) -> Void)
        async throws
    {
        let start = try await send("POST", "\(repositoryURL)/blobs/uploads/", accept: [])
        guard start.status == .accepted, let location = start.headers.first(name: "Location") else {
            throw try await failure(start, "starting the upload of \(descriptor.digest) to \(name)")
        }
        var target = location.hasPrefix("http") ? location : access.baseURL(domain) + location
        target += (target.contains("?") ? "&" : "?") + "digest=\(descriptor.digest)"
        let file = try content.open(descriptor.digest)
        let size = descriptor.size
        let cursor = Cursor()
        let body = AsyncThrowingStream<ByteBuffer, any Error>(unfolding: {
            let offset = cursor.offset
            guard offset < size else { return nil }
            var buffer = ByteBuffer()
            let wanted = Int(min(1 << 20, size - offset))
            let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { pointer in
                let read = pread(file.rawValue, pointer.baseAddress, wanted, off_t(offset))
                guard read > 0 else {
                    throw AtollError.dataLoss("blob \(descriptor.digest) ended early in the content store")
                }
                return read
            }
            cursor.offset = offset + Int64(count)
            progress(cursor.offset)
            return buffer
        })
        // Not through `send`: a streamed body cannot be sent twice (the HEAD or POST before it
        // already answered any challenge).
        let response = try await execute(
            "PUT", target, contentType: "application/octet-stream", body: .stream(body, length: .known(size)),
            timeout: .seconds(3600))
        guard response.status == .created else {
            throw try await failure(response, "uploading \(descriptor.digest) to \(name)")
        }
    }

    /// How far an upload's body has been read (the stream asks for one chunk at a time).
    private final class Cursor: @unchecked Sendable {
        var offset: Int64 = 0
    }

    /// PUTs a manifest under a tag; returns the digest the registry names.
    func putManifest(_ bytes: [UInt8], mediaType: String, tag: String) async throws -> String? {
        let response = try await execute(
            "PUT", "\(repositoryURL)/manifests/\(tag)", contentType: mediaType, body: .bytes(ByteBuffer(bytes: bytes)))
        guard response.status == .created else {
            throw try await failure(response, "pushing the manifest of \(name):\(tag)")
        }
        return response.headers.first(name: "Docker-Content-Digest")
    }

    // MARK: - Requests and authentication

    /// Sends a request; a 401 with a challenge is answered once (a bearer token from the realm,
    /// or basic credentials) and the request sent again.
    private func send(_ method: String, _ url: String, accept: [String]) async throws -> HTTPClientResponse {
        var response = try await execute(method, url, accept: accept)
        if response.status == .unauthorized, let challenge = response.headers.first(name: "WWW-Authenticate") {
            try await authenticate(challenge)
            response = try await execute(method, url, accept: accept)
        }
        return response
    }

    private func execute(
        _ method: String, _ url: String, accept: [String] = [], contentType: String? = nil,
        body: HTTPClientRequest.Body? = nil, timeout: TimeAmount = .seconds(300)
    ) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        if !accept.isEmpty { request.headers.add(name: "Accept", value: accept.joined(separator: ", ")) }
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let value = authorization.withLock({ $0 }) { request.headers.add(name: "Authorization", value: value) }
        request.body = body
        do {
            return try await http.execute(request, timeout: timeout)
        } catch {
            throw AtollError(
                .unavailable, "cannot reach the registry \(domain) (\(method) \(url))", cause: error)
        }
    }

    private func authenticate(_ challenge: String) async throws {
        let scheme = challenge.split(separator: " ", maxSplits: 1).first.map { $0.lowercased() } ?? ""
        let parameters = Self.challengeParameters(challenge)
        if scheme == "basic" {
            guard let credentials else {
                throw AtollError(
                    .permissionDenied, "registry \(domain) wants a login: run atoll login \(domain)"
                )
            }
            authorization.withLock { $0 = Self.basic(credentials) }
            return
        }
        guard scheme == "bearer", let realm = parameters["realm"], var components = URLComponents(string: realm) else {
            throw AtollError(
                .permissionDenied, "registry \(domain) asks for unsupported authentication: \(challenge)")
        }
        var query = components.queryItems ?? []
        if let service = parameters["service"] { query.append(URLQueryItem(name: "service", value: service)) }
        if let credentials { query.append(URLQueryItem(name: "account", value: credentials.username)) }
        for scope in Self.tokenScopes(challenge: parameters["scope"], own: scopes) {
            query.append(URLQueryItem(name: "scope", value: scope))
        }
        components.queryItems = query
        guard let tokenURL = components.url?.absoluteString else {
            throw AtollError(.permissionDenied, "registry \(domain) names an invalid token realm \(realm)")
        }
        var request = HTTPClientRequest(url: tokenURL)
        if let credentials { request.headers.add(name: "Authorization", value: Self.basic(credentials)) }
        let response: HTTPClientResponse
        do { response = try await http.execute(request, timeout: .seconds(60)) } catch {
            throw AtollError(.unavailable, "cannot reach the token service \(realm)", cause: error)
        }
        guard response.status == .ok else {
            throw AtollError(
                .permissionDenied,
                "the token service of \(domain) refused access (HTTP \(response.status.code))")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
        guard let token = (object?["token"] as? String) ?? (object?["access_token"] as? String), !token.isEmpty else {
            throw AtollError(.permissionDenied, "the token service of \(domain) answered without a token")
        }
        authorization.withLock { $0 = "Bearer \(token)" }
    }

    /// The scopes a token request names, each once: those the challenge lists (space-separated),
    /// then the client's own. Asking for all of them keeps one token good for every request.
    static func tokenScopes(challenge: String?, own: [String]) -> [String] {
        var seen = Set<String>()
        let listed = (challenge ?? "").split(separator: " ").map(String.init)
        return (listed + own).filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    static func basic(_ credentials: RegistryCredentials) -> String {
        "Basic " + Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()
    }

    /// `Bearer realm="…",service="…",scope="…"` → its key/value pairs.
    static func challengeParameters(_ challenge: String) -> [String: String] {
        guard let space = challenge.firstIndex(of: " ") else { return [:] }
        var result: [String: String] = [:]
        var rest = Substring(challenge[challenge.index(after: space)...])
        while let equals = rest.firstIndex(of: "=") {
            let key = rest[..<equals].trimmingCharacters(in: CharacterSet(charactersIn: " ,")).lowercased()
            rest = rest[rest.index(after: equals)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                let end = rest.firstIndex(of: "\"") ?? rest.endIndex
                value = String(rest[..<end])
                rest = end < rest.endIndex ? rest[rest.index(after: end)...] : ""
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = String(rest[..<end])
                rest = rest[end...]
            }
            result[key] = value
        }
        return result
    }

    /// The registry's own error (its JSON error body) as an AtollError.
    private func failure(_ response: HTTPClientResponse, _ what: String) async throws -> AtollError {
        let body = (try? await response.body.collect(upTo: 64 << 10)).map { String(buffer: $0) } ?? ""
        let message =
            ((try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any])
            .flatMap { ($0["errors"] as? [[String: Any]])?.first?["message"] as? String }
            ?? body.prefix(200).description
        let code: AtollError.Code =
            switch response.status.code {
            case 404: .notFound
            case 401, 403: .permissionDenied
            default: .unavailable
            }
        return AtollError(code, "\(what): HTTP \(response.status.code)\(message.isEmpty ? "" : ": \(message)")")
    }
}
