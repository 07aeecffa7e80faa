import ArgumentParser
import AtollAPI
import AtollRuntime
import Foundation

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Fetch the logs of a container.")
    @Flag(name: .shortAndLong, help: "Follow log output.") var follow = false
    @Option(name: [.customShort("n"), .long], help: "Number of lines to show from the end of the logs (or all).")
    var tail: String?
    @Option(name: .long, help: "Show logs since a timestamp or relative duration (e.g. 42m).") var since: String?
    @Option(name: .long, help: "Show logs before a timestamp or relative duration.") var until: String?
    @Flag(name: .shortAndLong, help: "Show timestamps.") var timestamps = false
    @Argument(help: "The container.") var container: String

    func run() async throws {
        var request = Atoll_Engine_V1_LogsRequest()
        request.container = container
        request.follow = follow
        request.stdout = true
        request.stderr = true
        request.tail = -1
        if let tail, tail != "all" {
            guard let count = Int64(tail), count >= 0 else {
                throw ValidationError("invalid --tail \"\(tail)\": want a number or all")
            }
            request.tail = count
        }
        if let since { request.since = try LogTime.parse(since, now: Date()) }
        if let until { request.until = try LogTime.parse(until, now: Date()) }
        let timestamps = self.timestamps
        try await GlobalOptions.withEngine { [request] client in
            try await client.containers.logs(request) { response in
                var atLineStart = true
                for try await entry in response.messages {
                    var bytes = Data()
                    if timestamps && atLineStart {
                        bytes.append(Data((LogLine.formatTimestamp(entry.timestamp) + " ").utf8))
                    }
                    bytes.append(entry.content)
                    if !entry.partial { bytes.append(0x0A) }
                    atLineStart = !entry.partial
                    Output.write(bytes, to: entry.stderr ? .standardError : .standardOutput)
                }
            }
        }
    }
}
