import AtollCore
import Foundation
import Glibc
import Synchronization

@testable import AtollStorage

/// Runs `body` with a fresh directory under /tmp; afterwards unmounts everything mounted below
/// it (deepest first) and removes it, whether the body succeeded, threw or failed expectations.
func withTemporaryDirectory(_ body: (String) throws -> Void) throws {
    let directory = "/tmp/atoll-storage-test-\(Identifier.random().prefix(16))"
    try Syscall.mkdirAll(directory, mode: 0o755)
    defer {
        unmountEverything(below: directory)
        try? FileSystem.removeTree(directory)
    }
    try body(directory)
}

/// Unmounts every mount at or below `directory`, deepest first.
func unmountEverything(below directory: String) {
    for _ in 0..<4 {
        let points = mountPoints(below: directory)
        if points.isEmpty { return }
        for point in points.sorted(by: { $0.count > $1.count }) {
            try? Mount.unmountAll(at: point)
        }
    }
}

func mountPoints(below directory: String) -> [String] {
    guard let bytes = try? FileSystem.readFile("/proc/self/mountinfo") else { return [] }
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count > 4 else { return nil }
        let point = String(fields[4])
        return point == directory || point.hasPrefix(directory + "/") ? point : nil
    }
}

/// Mounts `mounts` at `target` (created if needed), runs `body`, and unmounts again even when
/// the body throws.
func withMounted(_ mounts: [Mount], at target: String, _ body: () throws -> Void) throws {
    try Syscall.mkdirAll(target)
    for mount in mounts { try mount.mount(at: target) }
    defer { try? Mount.unmountAll(at: target) }
    try body()
}

func writeFile(_ path: String, _ text: String) throws {
    let fd = try Syscall.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
    try fd.writeAll(Array(text.utf8))
}

func readText(_ path: String) throws -> String {
    String(decoding: try FileSystem.readFile(path), as: UTF8.self)
}

func errorCode(_ body: () throws -> Void) -> AtollError.Code? {
    do {
        try body()
        return nil
    } catch let error as AtollError {
        return error.code
    } catch {
        return .internalError
    }
}

func errorMessage(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return "\(error)"
    }
}

/// A value shared between test threads (closures that escape cannot capture a Mutex itself).
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func update(_ body: (inout Value) -> Void) { mutex.withLock { body(&$0) } }
    var value: Value { mutex.withLock { $0 } }
}
