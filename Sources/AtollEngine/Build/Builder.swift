import AtollBuild
import AtollCore
import AtollImages
import AtollOCI
import AtollStorage
import Foundation
import Logging
import Synchronization

/// `atoll build`: turns a Dockerfile and its context into an image. Stages form a graph and
/// those that do not depend on each other build at the same time; RUN steps run in a container
/// on a snapshot of the step before, each step that changes files commits one layer, and every
/// such step is cached under a key made of its parent's key, the instruction and what it read.
public final class Builder: Sendable {
    let images: ImageService
    let containers: ContainerService
    let snapshotter: any Snapshotter
    let content: ContentStore
    let root: String
    let platform: Platform
    let logger = Logger(label: "atoll.build")

    init(
        images: ImageService, containers: ContainerService, snapshotter: any Snapshotter, content: ContentStore,
        root: String, platform: Platform = .host
    ) throws {
        self.images = images
        self.containers = containers
        self.snapshotter = snapshotter
        self.content = content
        self.root = root
        self.platform = platform
        // Directories of builds a crash interrupted (their snapshots went with the engine's start).
        if let leftovers = try? FileManager.default.contentsOfDirectory(atPath: "\(root)/builds") {
            for entry in leftovers { BuildWorkspace.remove("\(root)/builds/\(entry)") }
        }
        // RUN steps such a crash cut short (their processes and cgroups).
        let steps = (try? FileManager.default.contentsOfDirectory(atPath: containers.paths.runtimeState)) ?? []
        if steps.contains(where: { $0.hasPrefix("run-") }), let runtime = try? containers.runtime(named: "") {
            for step in steps where step.hasPrefix("run-") { try? runtime.delete(step, force: true) }
        }
    }

    /// Builds `request` from the context unpacked in `context`. `events` hears progress; `pull`,
    /// when given, fetches a base image that is not here. Nothing the build made stays behind
    /// when it fails or is cancelled, except cached layers.
    public func build(
        _ request: BuildRequest, context: String, pull: (@Sendable (String) async throws -> Void)? = nil,
        events: @escaping @Sendable (BuildEvent) -> Void
    ) async throws -> BuildResult {
        for tag in request.tags {
            let reference = try ImageReference(parsing: tag)
            if reference.digest != nil {
                throw AtollError.invalidArgument("invalid tag \"\(tag)\": a digest cannot be a tag")
            }
        }
        guard ["default", "none", "host", ""].contains(request.network) else {
            throw AtollError.invalidArgument(
                "invalid --network \"\(request.network)\" for a build: want default, none or host")
        }
        let dockerfile = try Dockerfile.parse(request.dockerfile, name: request.dockerfileName)
        let metaArgs = try Self.metaArgs(dockerfile, buildArgs: request.buildArgs, platform: platform)
        let expander = WordExpander(environment: metaArgs, escape: dockerfile.escape)
        let graph = try StageGraph(dockerfile, target: request.target) { try expander.expand($0) }

        let workspace = try BuildWorkspace(
            root: root, images: images, snapshotter: snapshotter, content: content)
        defer { workspace.close() }
        let session = BuildSession(
            builder: self, request: request, dockerfile: dockerfile, graph: graph, metaArgs: metaArgs,
            context: context, workspace: workspace, pull: pull, events: events)
        let states = StageBoard(building: Set(graph.order))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in graph.order {
                group.addTask {
                    do {
                        let state = try await StageBuild(session: session, index: index, board: states).run()
                        await states.publish(index, .success(state))
                    } catch {
                        await states.publish(index, .failure(error))
                        throw error
                    }
                }
            }
            // The first failure cancels the other stages (their RUN steps are killed).
            for try await _ in group {}
        }
        var state = try await states.result(of: graph.target)
        if !request.labels.isEmpty {
            state.runConfig.labels = (state.runConfig.labels ?? [:]).merging(request.labels) { $1 }
        }
        state.config.created = state.created ?? state.config.created
        let unused = Set(request.buildArgs.keys).subtracting(session.consumedArgs).subtracting(Self.predefinedArgs)
            .subtracting(Self.platformArgs(platform).keys)
        if !unused.isEmpty {
            events(.warning("one or more build-args \(unused.sorted()) were not consumed"))
        }
        let built = state
        let record = try await BlockingWork.run { [images] in
            try images.storeBuilt(config: built.config, layers: built.layers, names: request.tags)
        }
        return BuildResult(
            imageID: record.id, tags: try request.tags.map { try ImageReference(parsing: $0).normalized })
    }

    /// `atoll builder prune`.
    public func pruneCache(all: Bool) async throws -> (entries: Int, reclaimed: Int64) {
        try await BlockingWork.run { [images] in try images.pruneBuildCache(all: all) }
    }

    /// The values of the ARGs before the first FROM: a --build-arg, else the default (which may
    /// use the ARGs before it); and BuildKit's automatic platform ARGs (`TARGETARCH`, ...), which
    /// a stage uses by declaring them (`ARG TARGETARCH`).
    static func metaArgs(_ dockerfile: Dockerfile, buildArgs: [String: String], platform: Platform) throws
        -> [String: String]
    {
        var values = platformArgs(platform)
        for arg in dockerfile.metaArgs {
            if let given = buildArgs[arg.name] {
                values[arg.name] = given
            } else if let value = arg.defaultValue {
                values[arg.name] = try WordExpander(environment: values, escape: dockerfile.escape).expand(value)
            }
        }
        return values
    }

    /// TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT and the same for BUILD: this host's
    /// platform (Atoll builds for the platform it runs on).
    static func platformArgs(_ platform: Platform) -> [String: String] {
        var values: [String: String] = [:]
        for prefix in ["TARGET", "BUILD"] {
            values["\(prefix)PLATFORM"] = platform.description
            values["\(prefix)OS"] = platform.os
            values["\(prefix)ARCH"] = platform.architecture
            values["\(prefix)VARIANT"] = platform.variant ?? ""
        }
        return values
    }

    /// Build args usable without an ARG (Docker's proxy variables); never reported as unused.
    static let predefinedArgs: Set<String> = [
        "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy",
        "ALL_PROXY", "all_proxy",
    ]
}

/// What every stage of one build shares.
final class BuildSession: Sendable {
    let builder: Builder
    let request: BuildRequest
    let dockerfile: Dockerfile
    let graph: StageGraph
    let metaArgs: [String: String]
    let context: String
    let workspace: BuildWorkspace
    let events: @Sendable (BuildEvent) -> Void
    let pull: (@Sendable (String) async throws -> Void)?
    private let stepCounter = Atomic<Int>(0)
    private let consumed = Mutex<Set<String>>([])

    init(
        builder: Builder, request: BuildRequest, dockerfile: Dockerfile, graph: StageGraph, metaArgs: [String: String],
        context: String, workspace: BuildWorkspace, pull: (@Sendable (String) async throws -> Void)?,
        events: @escaping @Sendable (BuildEvent) -> Void
    ) {
        self.pull = pull
        self.builder = builder
        self.request = request
        self.dockerfile = dockerfile
        self.graph = graph
        self.metaArgs = metaArgs
        self.context = context
        self.workspace = workspace
        self.events = events
        consumed.withLock { $0.formUnion(dockerfile.metaArgs.map(\.name)) }
    }

    func nextStepID() -> Int { stepCounter.add(1, ordering: .relaxed).newValue }
    func consume(_ name: String) { consumed.withLock { _ = $0.insert(name) } }
    var consumedArgs: Set<String> { consumed.withLock { $0 } }
}

/// Each stage's outcome, awaited by the stages that build on it or copy from it. Only stages the
/// build builds can be awaited, and a waiter that is cancelled stops waiting.
actor StageBoard {
    private let building: Set<Int>
    private var results: [Int: Result<ImageState, any Error>] = [:]
    private var waiters: [Int: [UUID: CheckedContinuation<ImageState, any Error>]] = [:]

    init(building: Set<Int>) { self.building = building }

    func publish(_ index: Int, _ result: Result<ImageState, any Error>) {
        results[index] = result
        for waiter in (waiters.removeValue(forKey: index) ?? [:]).values { waiter.resume(with: result) }
    }

    func result(of index: Int) async throws -> ImageState {
        if let result = results[index] { return try result.get() }
        guard building.contains(index) else {
            throw AtollError.invalidArgument("stage \(index) is not part of this build (named by an ONBUILD trigger?)")
        }
        let token = UUID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters[index, default: [:]][token] = continuation
                }
            }
        } onCancel: {
            Task { await self.cancel(index, token) }
        }
    }

    private func cancel(_ index: Int, _ token: UUID) {
        waiters[index]?.removeValue(forKey: token)?.resume(throwing: CancellationError())
    }
}
