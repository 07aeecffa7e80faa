import AtollAPI
import AtollCore
import AtollEngine
import AtollImages
import AtollOCI
import AtollStorage
import Foundation
import GRPCCore
import Glibc
import Synchronization

/// The Builder service: unpacks the streamed context into a directory of its own, runs the
/// engine's builder and streams its events back. A client that goes away cancels the build.
struct BuilderService: Atoll_Engine_V1_Builder.SimpleServiceProtocol {
    let engine: Engine
    var registries = RegistryAccess()

    func build(
        request: RPCAsyncSequence<Atoll_Engine_V1_BuildRequest, any Error>,
        response: RPCWriter<Atoll_Engine_V1_BuildEvent>, context: ServerContext
    ) async throws {
        var iterator = request.makeAsyncIterator()
        guard let first = try await iterator.next(), case .header(let header)? = first.part else {
            throw RPCError(code: .invalidArgument, message: "build: the first message must carry the header")
        }
        let directory = "\(engine.configuration.root)/builds/context-\(Identifier.random().prefix(12))"
        try Syscall.mkdirAll(directory, mode: 0o700)
        defer { BuildWorkspace.remove(directory) }
        try await StreamBridge.feed(consume: { fd, upload in
            do {
                _ = try Layer.apply(from: fd, toDirectory: directory, whiteouts: .plain)
                try upload.ensureComplete("the build context")
            } catch let error as AtollError {
                throw AtollError(error.code, "cannot read the build context: \(error.message)")
            }
        }) { write in
            while let message = try await iterator.next() {
                guard case .chunk(let data)? = message.part else {
                    throw RPCError(code: .invalidArgument, message: "build: only the first message may carry a header")
                }
                try await write(data)
            }
        }
        let buildRequest = BuildRequest(
            dockerfile: header.dockerfile,
            dockerfileName: header.dockerfileName.isEmpty ? "Dockerfile" : header.dockerfileName,
            tags: header.tags, buildArgs: header.buildArgs, target: header.target.isEmpty ? nil : header.target,
            noCache: header.noCache, labels: header.labels, network: header.network.isEmpty ? "default" : header.network
        )
        let (builder, images, registries) = (engine.builder, engine.images, self.registries)
        let (events, continuation) = AsyncStream<Atoll_Engine_V1_BuildEvent>.makeStream()
        let pending = PendingOutput()
        let running = Task {
            defer { continuation.finish() }
            // A base image that is not here is pulled (with the CLI's logins), as docker build does.
            let auths = header.registryAuths
            let pull: @Sendable (String) async throws -> Void = { reference in
                let login = (try? ImageReference(parsing: reference)).flatMap { auths[$0.domain] }
                _ = try await images.pull(
                    reference, access: registries,
                    credentials: login.map { RegistryCredentials(username: $0.username, password: $0.password) }
                ) { _ in }
            }
            let result = try await builder.build(buildRequest, context: directory, pull: pull) { event in
                // RUN output comes from the thread that reads the step's pipe: it waits while the
                // client is behind, and the step then waits on its full pipe.
                if case .output(_, let data) = event { pending.add(data.count) }
                continuation.yield(Self.message(event))
            }
            var done = Atoll_Engine_V1_BuildEvent()
            done.result.imageID = result.imageID
            done.result.tags = result.tags
            continuation.yield(done)
        }
        // gRPC reports a client that went away through the RPC's cancellation handle, not by
        // cancelling this task: either way the build stops (its RUN steps are killed).
        try await withRPCCancellationHandler {
            do {
                for await message in events {
                    try await response.write(message)
                    if case .output(let output)? = message.event { pending.remove(output.data.count) }
                }
            } catch {
                pending.close()
                running.cancel()
                _ = await running.result
                throw error
            }
            try await running.value
        } onCancelRPC: {
            pending.close()
            running.cancel()
        }
    }

    func pruneCache(request: Atoll_Engine_V1_PruneBuildCacheRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_PruneBuildCacheResponse
    {
        let (entries, reclaimed) = try await engine.builder.pruneCache(all: request.all)
        var response = Atoll_Engine_V1_PruneBuildCacheResponse()
        response.entriesRemoved = Int64(entries)
        response.spaceReclaimed = reclaimed
        return response
    }

    static func message(_ event: BuildEvent) -> Atoll_Engine_V1_BuildEvent {
        var message = Atoll_Engine_V1_BuildEvent()
        switch event {
        case .step(let id, let stage, let number, let count, let text, let cached):
            message.step.id = Int32(id)
            message.step.stage = stage
            message.step.number = Int32(number)
            message.step.count = Int32(count)
            message.step.text = text
            message.step.cached = cached
        case .output(let id, let data):
            message.output.id = Int32(id)
            message.output.data = Data(data)
        case .done(let id, let duration):
            message.done.id = Int32(id)
            let (seconds, attoseconds) = duration.components
            message.done.durationNs = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        case .warning(let text):
            message.warning = text
        }
        return message
    }
}

/// Bytes of RUN output queued for the client but not yet written: the producer waits above a
/// bound, so a step that prints without end cannot fill the daemon's memory.
final class PendingOutput: Sendable {
    private let bytes = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)
    static let limit = 8 << 20

    /// Counts `count` more bytes, first waiting (on the calling thread) until there is room or
    /// nobody reads any more.
    func add(_ count: Int) {
        while bytes.load(ordering: .relaxed) > Self.limit && !closed.load(ordering: .relaxed) { usleep(1000) }
        bytes.add(count, ordering: .relaxed)
    }

    /// The client is gone: producers stop waiting.
    func close() { closed.store(true, ordering: .relaxed) }

    func remove(_ count: Int) { bytes.subtract(count, ordering: .relaxed) }
}
