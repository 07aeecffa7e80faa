import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import Foundation
import Glibc

struct PullCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull", abstract: "Download an image from a registry.",
        discussion: """
            Layers already on this host are not fetched again; the others are fetched three at a
            time, each verified against its digest while it streams. Registries on loopback are
            reached over plain HTTP, others over HTTPS unless atolld runs with --insecure-registry.
            """)
    @Flag(name: .shortAndLong, help: "Suppress verbose output.") var quiet = false
    @Option(help: "Set platform if the image is multi-platform (os/arch[/variant]).") var platform: String?
    @Argument(help: "NAME[:TAG|@DIGEST]") var reference: String

    func run() async throws {
        var request = Atoll_Engine_V1_PullRequest()
        request.reference = reference
        request.platform = platform ?? ""
        if let login = try CLIConfigFile.credentials(forImage: reference) {
            (request.username, request.password) = login
        }
        let display = PullDisplay(quiet: quiet, terminal: isatty(1) == 1)
        if !quiet { display.line("Pulling from \(reference)") }
        try await GlobalOptions.withEngine { [request] client in
            try await client.images.pull(request, options: .longRunning) { response in
                for try await event in response.messages { display.show(event) }
            }
        }
        display.finish(reference: reference)
    }
}

/// Docker's pull output: a line per layer that changes in place on a terminal (only state
/// changes otherwise), and a total.
final class PullDisplay: @unchecked Sendable {
    /// How a layer's states read: Docker's words for pulls and for pushes.
    struct Verbs {
        var present: String
        var moving: String
        var done: String
        static let pull = Verbs(present: "Already exists", moving: "Downloading", done: "Pull complete")
        static let push = Verbs(present: "Layer already exists", moving: "Pushing", done: "Pushed")
    }

    private let verbs: Verbs
    private let quiet: Bool
    private let terminal: Bool
    private var order: [String] = []
    private var states: [String: String] = [:]
    private var sizes: [String: Int64] = [:]
    private var received: [String: Int64] = [:]
    private var drawn = 0
    private var manifest = ""
    private var fetchedAny = false

    init(quiet: Bool, terminal: Bool, verbs: Verbs = .pull) {
        self.verbs = verbs
        self.quiet = quiet
        self.terminal = terminal
    }

    func line(_ text: String) { Output.print(text) }

    func show(_ event: Atoll_Engine_V1_PullProgress) {
        let id = String(event.digest.dropFirst(7).prefix(12))
        switch event.kind {
        case "resolved":
            manifest = event.digest
            for layer in event.layers {
                let layerID = String(layer.digest.dropFirst(7).prefix(12))
                if states[layerID] == nil { order.append(layerID) }
                states[layerID] = "Waiting"
                sizes[layerID] = layer.size
            }
        case "present":
            guard states[id] != nil else { return }
            states[id] = verbs.present
        case "progress":
            guard states[id] != nil else { return }
            received[id] = event.received
            states[id] = verbs.moving
            fetchedAny = true
            if !terminal { return }
        case "fetched":
            guard states[id] != nil else { return }
            received[id] = sizes[id]
            states[id] = verbs.done
            fetchedAny = true
        case "mounted":
            guard states[id] != nil else { return }
            received[id] = sizes[id]
            states[id] = "Mounted from \(event.source)"
            fetchedAny = true
        default:
            return
        }
        render(changed: id)
    }

    private func render(changed id: String) {
        guard !quiet else { return }
        guard terminal else {
            if let state = states[id] { Output.print("\(id): \(state)") }
            return
        }
        var text = drawn > 0 ? "\u{1B}[\(drawn)A" : ""
        for layer in order {
            text += "\u{1B}[2K\(layer): \(describe(layer))\n"
        }
        let total = sizes.values.reduce(0, +)
        let done = order.reduce(Int64(0)) { $0 + (states[$1] == verbs.present ? sizes[$1] ?? 0 : received[$1] ?? 0) }
        text += "\u{1B}[2Ktotal: \(bar(done, total)) \(Output.size(done))/\(Output.size(total))\n"
        drawn = order.count + 1
        Output.write(Data(text.utf8))
    }

    private func describe(_ layer: String) -> String {
        let state = states[layer] ?? ""
        guard state == verbs.moving, let size = sizes[layer] else { return state }
        let got = received[layer] ?? 0
        return "\(verbs.moving) \(bar(got, size)) \(Output.size(got))/\(Output.size(size))"
    }

    private func bar(_ done: Int64, _ total: Int64) -> String {
        let width = 30
        let filled = total > 0 ? Int(Double(width) * Double(done) / Double(total)) : width
        return "[" + String(repeating: "=", count: max(0, filled - 1)) + (filled > 0 ? ">" : "")
            + String(repeating: " ", count: max(0, width - filled)) + "]"
    }

    func finish(reference: String) {
        guard !quiet else {
            Output.print(reference)
            return
        }
        Output.print("Digest: \(manifest)")
        Output.print(
            fetchedAny
                ? "Status: Downloaded newer image for \(reference)" : "Status: Image is up to date for \(reference)")
        Output.print(reference)
    }
}
