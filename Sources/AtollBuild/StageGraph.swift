import AtollCore

/// Which stages a build needs and in what order: a stage depends on the stage its `FROM` names and
/// on the stages its `COPY --from` names. Stages that do not depend on each other can build at the
/// same time; a cycle is an error naming the stages in it.
public struct StageGraph: Sendable, Equatable {
    /// Where a stage's `FROM` or a `COPY --from` points.
    public enum Source: Sendable, Equatable, Hashable {
        case scratch
        case stage(Int)
        case image(String)
    }

    /// Each stage's base, `FROM` expanded with the meta args.
    public let bases: [Source]
    /// Each stage's direct dependencies (stage indices), without duplicates.
    public let dependencies: [[Int]]
    /// Where each `COPY --from` reads, by stage and by the instruction's position in the stage:
    /// the builder takes the graph's answer, so that what a stage waits for is always built.
    public let copySources: [[Int: Source]]
    /// The stages the target needs, each after the stages it depends on; the target is last.
    public let order: [Int]
    public var target: Int { order.last ?? 0 }

    /// Builds the graph. `expand` expands a word with the meta args (`FROM $BASE`,
    /// `COPY --from=$STAGE`); `target` is a stage name or nil for the last stage.
    public init(_ dockerfile: Dockerfile, target: String?, expand: (String) throws -> String) throws {
        let stages = dockerfile.stages
        guard !stages.isEmpty else { throw AtollError.invalidArgument("the Dockerfile has no FROM instruction") }
        guard stages.count <= Self.maximumStages else {
            throw AtollError.invalidArgument(
                "the Dockerfile has \(stages.count) stages; at most \(Self.maximumStages) are supported")
        }
        var bases: [Source] = []
        var dependencies: [[Int]] = []
        var copySources: [[Int: Source]] = []
        for stage in stages {
            let base = try expand(stage.base)
            let source = Self.source(base, in: stages, before: stage.index)
            bases.append(source)
            var needs: [Int] = []
            if case .stage(let index) = source { needs.append(index) }
            var copies: [Int: Source] = [:]
            for (position, instruction) in stage.instructions.enumerated() {
                guard case .copy(let copy) = instruction.command, let from = copy.from else { continue }
                let copySource = try Self.copySource(try expand(from), in: stages, line: instruction.line)
                copies[position] = copySource
                if case .stage(let index) = copySource, !needs.contains(index) { needs.append(index) }
            }
            dependencies.append(needs)
            copySources.append(copies)
        }
        let targetIndex: Int
        if let target, !target.isEmpty {
            guard let index = stages.firstIndex(where: { $0.name == target.lowercased() }) else {
                throw AtollError.invalidArgument("target stage \"\(target)\" could not be found")
            }
            targetIndex = index
        } else {
            targetIndex = stages.count - 1
        }
        self.bases = bases
        self.dependencies = dependencies
        self.copySources = copySources
        order = try Self.order(from: targetIndex, dependencies: dependencies, stages: stages)
    }

    /// More stages than any real Dockerfile has (the ordering walk recurses once per stage).
    static let maximumStages = 1000

    /// A `FROM` value: "scratch", an earlier stage's name, else an image reference.
    static func source(_ base: String, in stages: [Stage], before index: Int) -> Source {
        if base.lowercased() == "scratch" { return .scratch }
        if let stage = stages[..<index].lastIndex(where: { $0.name == base.lowercased() }) { return .stage(stage) }
        return .image(base)
    }

    /// A `COPY --from` value: a stage's name or its index, else an image reference.
    public static func copySource(_ from: String, in stages: [Stage], line: Int) throws -> Source {
        if let stage = stages.firstIndex(where: { $0.name == from.lowercased() }) { return .stage(stage) }
        if !from.isEmpty, from.allSatisfy(\.isASCII), from.allSatisfy(\.isNumber) {
            guard let index = Int(from), index < stages.count else {
                throw AtollError.invalidArgument(
                    "Dockerfile:\(line): COPY --from=\(from) names stage \(from), but the Dockerfile has \(stages.count)"
                )
            }
            return .stage(index)
        }
        if from.lowercased() == "scratch" { return .scratch }
        return .image(from)
    }

    /// Depth-first post-order from the target; meeting a stage that is still being visited is a cycle.
    private static func order(from target: Int, dependencies: [[Int]], stages: [Stage]) throws -> [Int] {
        enum Mark { case visiting, done }
        var marks: [Int: Mark] = [:]
        var order: [Int] = []
        var path: [Int] = []
        func name(_ index: Int) -> String { stages[index].name.map { "\"\($0)\"" } ?? "\(index)" }
        func visit(_ index: Int) throws {
            switch marks[index] {
            case .done: return
            case .visiting:
                let cycle = path[(path.lastIndex(of: index) ?? 0)...] + [index]
                throw AtollError.invalidArgument(
                    "stages depend on each other in a cycle: \(cycle.map(name).joined(separator: " → "))")
            case nil: break
            }
            marks[index] = .visiting
            path.append(index)
            for dependency in dependencies[index] { try visit(dependency) }
            path.removeLast()
            marks[index] = .done
            order.append(index)
        }
        try visit(target)
        return order
    }
}
