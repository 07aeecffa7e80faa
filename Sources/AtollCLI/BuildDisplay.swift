import AtollAPI
import AtollCore
import Foundation
import Glibc

/// What `atoll build` prints, on standard error as BuildKit does (standard output keeps the
/// image ID for `-q`): `plain` is BuildKit's plain log (`#N [stage 2/4] RUN …`, output lines
/// with their time, `#N CACHED`, `#N DONE 0.4s`); `tty` is one line per step with RUN output
/// indented under it; `quiet` prints only the ID, and on failure the failed step's output.
final class BuildDisplay: @unchecked Sendable {
    enum Mode { case plain, tty, quiet }

    private let mode: Mode
    private let lock = NSLock()
    private var steps: [Int32: (text: String, started: ContinuousClock.Instant)] = [:]
    private var pendingLine: [Int32: [UInt8]] = [:]
    private var cached: Set<Int32> = []

    init(mode: Mode) { self.mode = mode }

    func context(entries: Int, bytes: Int64) {
        guard mode != .quiet else { return }
        let text = "[internal] load build context: \(entries) files, \(Output.size(bytes))"
        emit(mode == .plain ? "#0 \(text)" : " => \(text)")
    }

    func show(_ event: Atoll_Engine_V1_BuildEvent) {
        lock.lock()
        defer { lock.unlock() }
        switch event.event {
        case .step(let step)?:
            let text = "[\(step.stage) \(step.number)/\(step.count)] \(step.text)"
            steps[step.id] = (text, .now)
            if step.cached { cached.insert(step.id) }
            guard mode != .quiet else { return }
            switch mode {
            case .plain: emit("#\(step.id) \(text)" + (step.cached ? "\n#\(step.id) CACHED" : ""))
            default: emit(step.cached ? " => CACHED \(text)" : " => \(text)")
            }
        case .output(let output)?:
            let buffer = pendingLine[output.id, default: []] + Array(output.data)
            var start = 0
            while let newline = buffer[start...].firstIndex(of: 10) {
                line(output.id, Array(buffer[start..<newline]))
                start = newline + 1
            }
            pendingLine[output.id] = Array(buffer[start...])
        case .done(let done)?:
            if let rest = pendingLine.removeValue(forKey: done.id), !rest.isEmpty { line(done.id, rest) }
            if mode == .plain && !cached.contains(done.id) {
                emit("#\(done.id) DONE \(String(format: "%.1fs", Double(done.durationNs) / 1e9))")
            }
        case .warning(let text)?:
            if mode != .quiet { emit("[warning] \(text)") }
        case .result(let result)?:
            let prefix = mode == .plain ? "#\(steps.count + 1)" : " =>"
            if mode != .quiet { emit("\(prefix) writing image \(result.imageID)") }
            for tag in result.tags where mode != .quiet { emit("\(prefix) naming to \(tag)") }
        case nil:
            break
        }
    }

    private func line(_ id: Int32, _ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        switch mode {
        case .plain:
            let elapsed = steps[id].map { ContinuousClock.now - $0.started } ?? .zero
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            emit("#\(id) \(String(format: "%.3f", seconds)) \(text)")
        case .tty: emit("    \(text)")
        case .quiet: break
        }
    }

    func finish(imageID: String, tags: [String]) {
        if mode == .quiet { Output.print(imageID) }
    }

    private func emit(_ text: String) {
        Output.write(Data((text + "\n").utf8), to: .standardError)
    }
}
