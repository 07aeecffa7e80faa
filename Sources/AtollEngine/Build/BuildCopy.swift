import AtollBuild
import AtollCore
import AtollOCI
import AtollRuntime
import AtollStorage
import CAtollShim
import Foundation
import Glibc

extension StageBuild {
    /// COPY and ADD: copies files from the context, another stage or an image into a snapshot of
    /// the current tree and commits them as a layer — or takes that layer from the cache, when the
    /// files read are the same as last time.
    func copyStep(_ copy: CopyCommand, isAdd: Bool, instruction: Instruction, report: (Bool) -> Void) async throws {
        let keyword = isAdd ? "ADD" : "COPY"
        let expander = expander()
        let heredocNames = Set(copy.heredocs.map(\.name))
        let sources = try copy.sources.map { heredocNames.contains($0) ? $0 : try expander.expand($0) }
        if let url = sources.first(where: { $0.hasPrefix("http://") || $0.hasPrefix("https://") }) {
            throw AtollError(.unsupported, "\(keyword) from a URL (\(url)) is not supported: download it in a RUN step")
        }
        var destination = try expander.expand(copy.destination)
        if !destination.hasPrefix("/") {
            let workdir = state.runConfig.workingDir ?? "/"
            destination = (workdir.hasSuffix("/") ? workdir : workdir + "/") + destination
        }
        let chown = try copy.chown.map { try expander.expand($0) }
        let chmod = try copy.chmod.map { text -> mode_t in
            let value = try expander.expand(text)
            guard let mode = mode_t(value, radix: 8), mode <= 0o7777 else {
                throw AtollError.invalidArgument("invalid --chmod=\(value): want an octal mode such as 755")
            }
            return mode
        }
        // Where the files come from, and what identifies them for the cache.
        let origin: CopyOrigin
        var identity: [String]
        if let from = copy.from {
            // The graph's answer, expanded with the meta args as the graph saw it; an ONBUILD
            // trigger's --from is worked out here (and may only name a stage this build builds).
            let graphSource = position.flatMap { session.graph.copySources[stage.index][$0] }
            let source =
                try graphSource
                ?? StageGraph.copySource(
                    try WordExpander(environment: session.metaArgs, escape: session.dockerfile.escape).expand(from),
                    in: session.dockerfile.stages, line: instruction.line)
            switch source {
            case .stage(let index):
                // The graph cannot see a trigger's stages, so one could wait on itself: refused.
                guard position != nil else {
                    throw AtollError(
                        .unsupported, "ONBUILD \(keyword) --from=\(from) names a stage: only images can be named there")
                }
                let source = try await board.result(of: index)
                origin = .snapshot(source.topChain)
                identity = ["stage", source.key.description]
            case .image(let reference):
                let source = try await session.imageState(reference)
                origin = .snapshot(source.topChain)
                identity = ["image", source.key.description]
            case .scratch:
                origin = .snapshot(nil)
                identity = ["scratch"]
            }
        } else {
            origin = .context(session.context)
            identity = ["context"]
        }
        let plan = CopyPlan(
            keyword: keyword, sources: sources, heredocs: copy.heredocs, destination: destination, chown: chown,
            chmod: chmod, extractArchives: isAdd && copy.from == nil, keepOwners: copy.from != nil)
        let workspace = session.workspace
        let inputs = try await BlockingWork.run { try origin.withRoot(workspace) { try plan.digest(sourceRoot: $0) } }
        identity.append(inputs.description)
        let createdBy = "\(keyword) \(sources.joined(separator: " ")) \(destination) # atoll"
        let key = CacheKey.derive(
            state.key,
            [keyword, destination, chown ?? "", chmod.map { String($0, radix: 8) } ?? ""] + sources + identity)
        if try await fromCache(key, createdBy: createdBy) {
            report(true)
            return
        }
        report(false)
        try await commitStep(key: key, createdBy: createdBy) { snapshot in
            try await BlockingWork.run {
                try origin.withRoot(workspace) { sourceRoot in
                    try workspace.withMounted(snapshot) { root in try plan.copy(from: sourceRoot, into: root) }
                }
                return true
            }
        }
    }
}

/// Where COPY reads from: the build context, or a committed tree (a stage or an image).
enum CopyOrigin: Sendable {
    case context(String)
    case snapshot(String?)

    /// Runs `body` with the source tree's directory (a read-only view mounted for the purpose).
    func withRoot<T>(_ workspace: BuildWorkspace, _ body: (String) throws -> T) throws -> T {
        switch self {
        case .context(let directory):
            return try body(directory)
        case .snapshot(let chain):
            let view = try workspace.view(of: chain)
            defer { workspace.discard(view) }
            return try workspace.withMounted(view, body)
        }
    }
}
