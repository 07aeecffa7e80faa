import AtollBuild
import AtollCore
import AtollImages
import AtollOCI
import AtollRuntime
import CAtollShim
import Foundation
import Glibc

/// Builds one stage: its base, then its instructions in order, each from the cache when its key
/// is known, else for real.
final class StageBuild: @unchecked Sendable {
    let session: BuildSession
    let stage: Stage
    let board: StageBoard
    /// The image as the steps so far left it.
    var state: ImageState
    /// ARGs declared in this stage, with their values (nil: declared without a value).
    var args: [String: String?] = [:]
    /// Whether a CMD came earlier in this stage (an ENTRYPOINT then keeps it).
    var cmdSet = false
    let label: String
    var number = 1
    /// The instruction's position in the stage (nil while ONBUILD triggers run).
    var position: Int?

    init(session: BuildSession, index: Int, board: StageBoard) {
        self.session = session
        stage = session.dockerfile.stages[index]
        self.board = board
        state = .scratch(platform: session.builder.platform)
        label = stage.name ?? "stage-\(index)"
    }

    var count: Int { stage.instructions.count + 1 }
    var builder: Builder { session.builder }

    func run() async throws -> ImageState {
        let id = session.nextStepID()
        let started = ContinuousClock.now
        session.events(.step(id: id, stage: label, number: 1, count: count, text: "FROM \(stage.base)", cached: false))
        state = try await base()
        session.events(.done(id: id, duration: ContinuousClock.now - started))
        let triggers = state.runConfig.onBuild ?? []
        state.runConfig.onBuild = nil
        for trigger in triggers {
            let parsed = try Dockerfile.parse("FROM scratch\n\(trigger)", name: "ONBUILD trigger")
            for instruction in parsed.stages.first?.instructions ?? [] {
                try await step(instruction, shown: "ONBUILD \(instruction.text)")
            }
        }
        for (position, instruction) in stage.instructions.enumerated() {
            number += 1
            self.position = position
            try await step(instruction, shown: instruction.text)
        }
        return state
    }

    /// The state `FROM` starts from.
    private func base() async throws -> ImageState {
        if let requested = stage.platform {
            let expanded = try WordExpander(environment: session.metaArgs, escape: session.dockerfile.escape)
                .expand(requested)
            let wanted = try Platform(parsing: expanded)
            guard PlatformMatcher(builder.platform).matches(wanted) else {
                throw AtollError(
                    .unsupported,
                    "\(session.request.dockerfileName):\(stage.line): FROM --platform=\(expanded): this host builds for \(builder.platform) only"
                )
            }
        }
        switch session.graph.bases[stage.index] {
        case .scratch:
            return .scratch(platform: builder.platform)
        case .stage(let index):
            return try await board.result(of: index)
        case .image(let reference):
            return try await session.imageState(reference)
        }
    }

    /// Runs one instruction, reporting it as a step.
    private func step(_ instruction: Instruction, shown: String) async throws {
        try Task.checkCancellation()
        let id = session.nextStepID()
        let started = ContinuousClock.now
        var reported = false
        func report(cached: Bool) {
            guard !reported else { return }
            reported = true
            session.events(.step(id: id, stage: label, number: number, count: count, text: shown, cached: cached))
        }
        do {
            try await execute(instruction, id: id, report: report)
        } catch let error as AtollError where error.code == .invalidArgument && !error.message.hasPrefix("Dockerfile") {
            report(cached: false)
            throw AtollError(
                .invalidArgument, "\(session.request.dockerfileName):\(instruction.line): \(error.message)")
        }
        report(cached: false)
        session.events(.done(id: id, duration: ContinuousClock.now - started))
    }

    private func execute(_ instruction: Instruction, id: Int, report: (Bool) -> Void) async throws {
        switch instruction.command {
        case .arg(let declarations):
            report(false)
            for declaration in declarations {
                session.consume(declaration.name)
                var value = session.request.buildArgs[declaration.name]
                if value == nil, let defaultValue = declaration.defaultValue {
                    value = try expander().expand(defaultValue)
                }
                if value == nil { value = session.metaArgs[declaration.name] }
                args[declaration.name] = .some(value)
                state.key = CacheKey.derive(state.key, ["ARG", declaration.name, value ?? "\u{0}"])
            }
        case .config(let text):
            report(false)
            let change = try ConfigChange.parse(text, environment: expansionEnvironment())
            var config = state.runConfig
            change.apply(to: &config, cmdSet: cmdSet)
            if case .cmd = change { cmdSet = true }
            state.runConfig = config
            let key = CacheKey.derive(state.key, ["CONFIG", String(describing: change)])
            if case .workdir = change, let directory = config.workingDir,
                try await makeDirectory(directory, key: key, createdBy: historyText(instruction))
            {
                return
            }
            state.addHistory(historyText(instruction), cacheKey: key)
        case .shell(let shell):
            report(false)
            state.runConfig.shell = shell
            state.addHistory(historyText(instruction), cacheKey: CacheKey.derive(state.key, ["SHELL"] + shell))
        case .maintainer(let name):
            report(false)
            state.config.author = name
            state.addHistory(historyText(instruction), cacheKey: CacheKey.derive(state.key, ["MAINTAINER", name]))
        case .run(let run):
            try await runStep(run, instruction: instruction, id: id, report: report)
        case .copy(let copy):
            try await copyStep(copy, isAdd: false, instruction: instruction, report: report)
        case .add(let copy):
            try await copyStep(copy, isAdd: true, instruction: instruction, report: report)
        }
    }

    /// Takes the step's layer from the cache when there is one (and the build may use it).
    func fromCache(_ key: Digest, createdBy: String) async throws -> Bool {
        guard !session.request.noCache else { return false }
        let (images, workspace, current) = (builder.images, session.workspace, state)
        // Found and held in one hold of the content lock, so that no collection comes between.
        let cached: ImageState? = try await BlockingWork.run {
            images.contentLock.withReadLock {
                guard let record = images.cachedStep(key.description), let layer = record.layer,
                    let diffID = try? Digest(parsing: record.diffID),
                    // The layer must sit on this very parent: a parent step rerun with --no-cache
                    // may have made different layers under the same key since.
                    record.chainID == ChainID.chainID(current.config.rootfs.diffIDs + [diffID])?.description
                else { return nil }
                var next = current
                next.addLayer(
                    layer, diffID: diffID, chain: record.chainID, created: record.created, createdBy: createdBy)
                next.key = key
                workspace.hold(next)
                return next
            }
        }
        guard let cached else { return false }
        state = cached
        return true
    }

    /// WORKDIR creates its directory when the tree lacks it, in a layer of its own, as Docker
    /// does. Returns whether it made (or took from the cache) that layer.
    private func makeDirectory(_ path: String, key: Digest, createdBy: String) async throws -> Bool {
        if try await fromCache(key, createdBy: createdBy) { return true }
        let (workspace, user) = (session.workspace, state.runConfig.user ?? "")
        return try await commitStep(key: key, createdBy: createdBy) { snapshot in
            try await BlockingWork.run {
                try workspace.withMounted(snapshot) { root -> Bool in
                    let rootFD = try Syscall.open(root, flags: O_RDONLY | O_DIRECTORY)
                    defer { rootFD.close() }
                    if let existing = try? Syscall.openat2(
                        rootFD.rawValue, path, flags: Int32(ATOLL_O_PATH), resolve: RootedPath.inRoot)
                    {
                        existing.close()
                        return false
                    }
                    // Made for the stage's USER, as BuildKit does (root when the image lacks the user).
                    let owner = (try? UserLookup.resolve(user, rootfs: root)).map { ($0.uid, $0.gid) }
                    try RootedPath.makeDirectories(path, in: rootFD, owner: owner).close()
                    return true
                }
            }
        }
    }

    /// Runs `work` on a writable snapshot of the current tree and commits what it changed as the
    /// step's layer, cached under `key`. `work` returning false means there is nothing to commit:
    /// the snapshot goes and the state stays. Returns whether a layer was made.
    @discardableResult
    func commitStep(key: Digest, createdBy: String, _ work: @Sendable (String) async throws -> Bool) async throws
        -> Bool
    {
        let workspace = session.workspace
        let snapshot = try workspace.prepare(parent: state.topChain)
        do {
            guard try await work(snapshot) else {
                workspace.discard(snapshot)
                return false
            }
            let parent = state
            state = try await BlockingWork.run {
                var next = parent
                try workspace.commit(snapshot, over: &next, cacheKey: key, createdBy: createdBy)
                next.key = key
                return next
            }
            return true
        } catch {
            workspace.discard(snapshot)
            throw error
        }
    }

    // MARK: - Variables

    /// The ARGs in scope with a value, then the config's ENV over them (ENV wins, as in Docker).
    func expansionEnvironment() -> [String] {
        var entries = args.compactMap { name, value in value.map { "\(name)=\($0)" } }.sorted()
        entries += state.runConfig.env ?? []
        return entries
    }

    func expander() -> WordExpander {
        var environment: [String: String] = [:]
        for entry in expansionEnvironment() {
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            environment[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return WordExpander(environment: environment, escape: session.dockerfile.escape)
    }

    /// The history line of an instruction, as BuildKit writes it.
    func historyText(_ instruction: Instruction) -> String { instruction.text + " # atoll" }
}

extension BuildSession {
    /// The state an image starts a stage from (or COPY --from reads): the image here, else the
    /// image pulled from its registry, as `docker build` does.
    func imageState(_ reference: String) async throws -> ImageState {
        let (builder, workspace) = (self.builder, self.workspace)
        @Sendable func held() throws -> ImageState {
            try builder.images.contentLock.withReadLock {
                let state = try builder.imageState(reference)
                workspace.hold(state)
                return state
            }
        }
        do {
            return try await BlockingWork.run { try held() }
        } catch {
            guard let missing = error as? AtollError, missing.code == .notFound, let pull else { throw error }
            do {
                try await pull(reference)
            } catch {
                throw AtollError(
                    .notFound, "base image \"\(reference)\" is not here and cannot be pulled", cause: error)
            }
            return try await BlockingWork.run { try held() }
        }
    }
}

extension Builder {
    /// The state an image on this host starts a stage from.
    func imageState(_ reference: String) throws -> ImageState {
        let record: ImageRecord
        do {
            record = try images.resolve(reference)
        } catch let error as AtollError where error.code == .notFound {
            throw AtollError.notFound(
                "base image \"\(reference)\" is not here: pull or load it first (atoll pull \(reference))")
        }
        let (manifest, config, _, _) = try images.manifestAndConfig(of: record)
        return ImageState(
            config: config, layers: manifest.layers, topChain: record.topChainID.isEmpty ? nil : record.topChainID,
            key: Digest.sha256(of: Array("image \(record.id)".utf8)), created: config.created)
    }
}
