import AtollCore
import Foundation
import Testing

/// A scratch directory removed when the body returns.
func withTemporaryDirectory<T>(_ body: (URL) throws -> T) throws -> T {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("atoll-pki-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url)
}

/// Runs /usr/bin/openssl (or a shell pipeline through /bin/sh) in `directory`.
enum OpenSSL {
    static let path = "/usr/bin/openssl"

    @discardableResult
    static func run(_ arguments: [String], in directory: URL) throws -> Subprocess.Result {
        try Subprocess.run("/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", directory.path, path] + arguments)
    }

    static func shell(_ script: String, in directory: URL) throws -> Subprocess.Result {
        try Subprocess.run("/bin/sh", ["-c", "cd \"$0\" && \(script)", directory.path])
    }
}

extension URL {
    func write(_ text: String, to name: String) throws {
        try text.write(to: appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func read(_ name: String) throws -> String {
        try String(contentsOf: appendingPathComponent(name), encoding: .utf8)
    }
}

/// The error `body` throws, as an AtollError (failing the test if it throws nothing or something else).
func expectAtollError(
    _ code: AtollError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> AtollError? {
    do {
        try body()
        Issue.record("expected an AtollError (\(code)), nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as AtollError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected an AtollError (\(code)), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
