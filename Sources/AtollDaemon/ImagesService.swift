import AtollAPI
import AtollCore
import AtollEngine
import AtollImages
import AtollOCI
import Foundation
import GRPCCore
import Synchronization

/// The Images service: a thin adapter that decodes, calls the engine's ImageService off the
/// async pool, and encodes.
struct ImagesService: Atoll_Engine_V1_Images.SimpleServiceProtocol {
    let engine: Engine
    var registries = RegistryAccess()

    func pull(
        request: Atoll_Engine_V1_PullRequest, response: RPCWriter<Atoll_Engine_V1_PullProgress>, context: ServerContext
    ) async throws {
        let platform = try request.platform.isEmpty ? nil : Platform(parsing: request.platform)
        let credentials = Self.credentials(request.username, request.password)
        let (images, registries) = (engine.images, self.registries)
        try await Self.streamProgress(to: response) { events in
            _ = try await images.pull(
                request.reference, platform: platform, access: registries, credentials: credentials, events: events)
            return nil
        }
    }

    func push(
        request: Atoll_Engine_V1_PushRequest, response: RPCWriter<Atoll_Engine_V1_PullProgress>, context: ServerContext
    ) async throws {
        let credentials = Self.credentials(request.username, request.password)
        let (images, registries) = (engine.images, self.registries)
        try await Self.streamProgress(to: response) { events in
            try await images.push(request.reference, access: registries, credentials: credentials, events: events)
        }
    }

    func login(request: Atoll_Engine_V1_LoginRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_LoginResponse
    {
        guard !request.username.isEmpty else {
            throw AtollError.invalidArgument("login needs a username")
        }
        let credentials = RegistryCredentials(username: request.username, password: request.password)
        var response = Atoll_Engine_V1_LoginResponse()
        response.registry = try await engine.images.login(
            server: request.server, access: registries, credentials: credentials)
        return response
    }

    static func credentials(_ username: String, _ password: String) -> RegistryCredentials? {
        username.isEmpty ? nil : RegistryCredentials(username: username, password: password)
    }

    /// Runs a pull or push, sending its events (throttled) as they come; a digest it returns
    /// ends the stream as a "stored" message.
    static func streamProgress(
        to response: RPCWriter<Atoll_Engine_V1_PullProgress>,
        _ work: @escaping @Sendable (@escaping @Sendable (PullEvent) -> Void) async throws -> Digest?
    ) async throws {
        let (messages, continuation) = AsyncStream<Atoll_Engine_V1_PullProgress>.makeStream()
        let throttle = ProgressThrottle()
        let running = Task {
            defer { continuation.finish() }
            let digest = try await work { event in
                if let message = throttle.message(for: event) { continuation.yield(message) }
            }
            if let digest {
                var done = Atoll_Engine_V1_PullProgress()
                done.kind = "stored"
                done.digest = digest.description
                continuation.yield(done)
            }
        }
        for await message in messages { try await response.write(message) }
        try await running.value
    }

    var images: ImageService { engine.images }

    func importRootfs(
        request: RPCAsyncSequence<Atoll_Engine_V1_ImportRequest, any Error>, context: ServerContext
    ) async throws -> Atoll_Engine_V1_ImportResponse {
        var iterator = request.makeAsyncIterator()
        guard let first = try await iterator.next(), case .header(let header)? = first.part else {
            throw RPCError(code: .invalidArgument, message: "import: the first message must carry the header")
        }
        let platform = try header.platform.isEmpty ? nil : Platform(parsing: header.platform)
        let images = self.images
        let id = try await StreamBridge.feed(consume: { fd, upload in
            try images.importRootfs(
                from: fd, reference: header.reference, changes: header.changes, message: header.message,
                platform: platform, upload: upload)
        }) { write in
            while let message = try await iterator.next() {
                guard case .chunk(let data)? = message.part else {
                    throw RPCError(code: .invalidArgument, message: "import: only the first message may carry a header")
                }
                try await write(data)
            }
        }
        var response = Atoll_Engine_V1_ImportResponse()
        response.imageID = id
        return response
    }

    func load(request: RPCAsyncSequence<Atoll_Engine_V1_LoadRequest, any Error>, context: ServerContext) async throws
        -> Atoll_Engine_V1_LoadResponse
    {
        let images = self.images
        let loaded = try await StreamBridge.feed(consume: { fd, upload in try images.load(from: fd, upload: upload) }) {
            write in
            for try await message in request {
                if case .chunk(let data)? = message.part { try await write(data) }
            }
        }
        var response = Atoll_Engine_V1_LoadResponse()
        response.images = loaded.map { image in
            var message = Atoll_Engine_V1_LoadedImage()
            message.reference = image.reference
            message.imageID = image.imageID
            return message
        }
        return response
    }

    func save(
        request: Atoll_Engine_V1_SaveRequest, response: RPCWriter<Atoll_Engine_V1_DataChunk>, context: ServerContext
    ) async throws {
        let images = self.images
        let references = request.images
        // Resolve first so that an unknown name fails before any byte is sent.
        for reference in references { _ = try await BlockingWork.run { try images.resolve(reference) } }
        try await StreamBridge.drain(produce: { fd in try images.save(references, to: fd) }) { data in
            var chunk = Atoll_Engine_V1_DataChunk()
            chunk.data = data
            try await response.write(chunk)
        }
    }

    func list(request: Atoll_Engine_V1_ListImagesRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ListImagesResponse
    {
        let images = self.images
        let list = try await BlockingWork.run { try images.list(all: request.all, filters: request.filters) }
        var response = Atoll_Engine_V1_ListImagesResponse()
        response.images = list.map(Self.message(for:))
        return response
    }

    func inspect(request: Atoll_Engine_V1_InspectImageRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_InspectImageResponse
    {
        let images = self.images
        let details = try await BlockingWork.run { try images.inspect(request.reference) }
        var response = Atoll_Engine_V1_InspectImageResponse()
        response.summary = Self.message(for: details.summary)
        response.configJson = Data(details.configJSON)
        response.manifestJson = Data(details.manifestJSON)
        response.manifestMediaType = details.manifestMediaType
        response.diffIds = details.diffIDs
        response.storageDriver = engine.snapshotter.driverName
        if !details.topChainID.isEmpty { response.storageData = ["TopLayer": details.topChainID] }
        return response
    }

    func tag(request: Atoll_Engine_V1_TagImageRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_TagImageResponse
    {
        let images = self.images
        try await BlockingWork.run { try images.tag(source: request.source, target: request.target) }
        return Atoll_Engine_V1_TagImageResponse()
    }

    func remove(request: Atoll_Engine_V1_RemoveImageRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_RemoveImageResponse
    {
        let images = self.images
        let result = try await BlockingWork.run { try images.remove(request.reference, force: request.force) }
        var response = Atoll_Engine_V1_RemoveImageResponse()
        response.untagged = result.untagged
        response.deleted = result.deleted
        return response
    }

    func prune(request: Atoll_Engine_V1_PruneImagesRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_PruneImagesResponse
    {
        let images = self.images
        let result = try await BlockingWork.run { try images.prune(all: request.all, filters: request.filters) }
        var response = Atoll_Engine_V1_PruneImagesResponse()
        response.untagged = result.untagged
        response.deleted = result.deleted
        response.spaceReclaimed = result.reclaimed
        return response
    }

    static func message(for summary: AtollImages.ImageSummary) -> Atoll_Engine_V1_ImageSummary {
        var message = Atoll_Engine_V1_ImageSummary()
        message.id = summary.id
        message.repoTags = summary.repoTags
        message.repoDigests = summary.repoDigests
        message.created = summary.created
        message.size = summary.size
        message.sharedSize = summary.sharedSize
        message.containers = Int64(summary.containers)
        message.labels = summary.labels
        message.targetDigest = summary.targetDigest
        return message
    }
}

/// Turns pull events into messages, sending a layer's progress at most every 100 ms.
final class ProgressThrottle: Sendable {
    private let lastSent = Mutex<[Digest: ContinuousClock.Instant]>([:])

    func message(for event: PullEvent) -> Atoll_Engine_V1_PullProgress? {
        var message = Atoll_Engine_V1_PullProgress()
        switch event {
        case .resolved(let manifest, let layers):
            message.kind = "resolved"
            message.digest = manifest.description
            message.layers = layers.map { layer in
                var entry = Atoll_Engine_V1_PullLayer()
                entry.digest = layer.digest.description
                entry.size = layer.size
                return entry
            }
        case .present(let digest):
            message.kind = "present"
            message.digest = digest.description
        case .progress(let digest, let received, let total):
            let now = ContinuousClock.now
            let due = lastSent.withLock { sent in
                if let last = sent[digest], now - last < .milliseconds(100) { return false }
                sent[digest] = now
                return true
            }
            guard due else { return nil }
            message.kind = "progress"
            message.digest = digest.description
            message.received = received
            message.total = total
        case .fetched(let digest):
            message.kind = "fetched"
            message.digest = digest.description
        case .mounted(let digest, let repository):
            message.kind = "mounted"
            message.digest = digest.description
            message.source = repository
        case .stored(let record):
            message.kind = "stored"
            message.imageID = record.id
        }
        return message
    }
}
