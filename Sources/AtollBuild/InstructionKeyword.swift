import AtollCore

/// The Dockerfile instructions, matched case-insensitively.
enum InstructionKeyword: String, CaseIterable, Sendable {
    case add = "ADD"
    case arg = "ARG"
    case cmd = "CMD"
    case copy = "COPY"
    case entrypoint = "ENTRYPOINT"
    case env = "ENV"
    case expose = "EXPOSE"
    case from = "FROM"
    case healthcheck = "HEALTHCHECK"
    case label = "LABEL"
    case maintainer = "MAINTAINER"
    case onbuild = "ONBUILD"
    case run = "RUN"
    case shell = "SHELL"
    case stopsignal = "STOPSIGNAL"
    case user = "USER"
    case volume = "VOLUME"
    case workdir = "WORKDIR"

    /// The instruction a keyword names, or an `unknown instruction` error suggesting the nearest.
    init(parsing word: String) throws {
        if let keyword = InstructionKeyword(rawValue: word.uppercased()) {
            self = keyword
            return
        }
        var message = "unknown instruction \"\(word)\""
        if let near = Self.nearest(to: word.uppercased()) { message += " (did you mean \(near.rawValue)?)" }
        throw AtollError.invalidArgument(message)
    }

    /// Instructions that only edit the image config (`Command.config`).
    var isConfigChange: Bool {
        switch self {
        case .cmd, .entrypoint, .env, .expose, .healthcheck, .label, .onbuild, .stopsignal, .user, .volume, .workdir:
            return true
        case .add, .arg, .copy, .from, .maintainer, .run, .shell:
            return false
        }
    }

    /// The keyword at most two edits away from `word`, if one is.
    private static func nearest(to word: String) -> InstructionKeyword? {
        guard word.count >= 3, word.count <= 14 else { return nil }
        let candidates = allCases.map { ($0, editDistance(Array(word), Array($0.rawValue))) }
        guard let best = candidates.min(by: { $0.1 < $1.1 }), best.1 <= 2 else { return nil }
        return best.0
    }

    /// The optimal-string-alignment distance: insertions, deletions, substitutions and swaps of
    /// two neighbours (`RNU` is one edit from `RUN`).
    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in stride(from: 1, through: a.count, by: 1) {
            for j in stride(from: 1, through: b.count, by: 1) {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = Swift.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = Swift.min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}
