import Foundation
import Glibc

/// An exclusive, advisory lock on a file (flock), held for as long as the value lives. The file
/// records the holder's pid so that a refused process can say who holds it.
public final class LockFile: Sendable {
    private let descriptor: FileDescriptor
    public let path: String

    /// Takes the lock or throws `.failedPrecondition` naming the pid that holds it.
    public init(path: String, purpose: String) throws {
        let fd = try Syscall.open(path, flags: O_RDWR | O_CREAT, mode: 0o600)
        if flock(fd.rawValue, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? fd.readAll(limit: 64)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let pid = holder.trimmingCharacters(in: .whitespacesAndNewlines)
            throw AtollError.failedPrecondition(
                "\(purpose) is already in use by another process\(pid.isEmpty ? "" : " (pid \(pid))") holding \(path)")
        }
        ftruncate(fd.rawValue, 0)
        try fd.writeAll(Array("\(getpid())\n".utf8))
        descriptor = fd
        self.path = path
    }

    /// Releases the lock (also done when the value goes away).
    public func release() { descriptor.close() }
}
