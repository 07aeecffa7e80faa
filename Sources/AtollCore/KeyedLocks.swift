import Foundation

/// Serializes operations on one object (a container's start, stop, exit handling and removal;
/// a volume's mounts) while letting different objects proceed in parallel.
public final class KeyedLocks: Sendable {
    private let locks = NSLock()
    nonisolated(unsafe) private var table: [String: (lock: NSLock, users: Int)] = [:]

    public init() {}

    public func withLock<T>(_ key: String, _ body: () throws -> T) rethrows -> T {
        locks.lock()
        var entry = table[key] ?? (NSLock(), 0)
        entry.users += 1
        table[key] = entry
        locks.unlock()
        entry.lock.lock()
        defer {
            entry.lock.unlock()
            locks.lock()
            if let current = table[key] {
                if current.users <= 1 { table[key] = nil } else { table[key] = (current.lock, current.users - 1) }
            }
            locks.unlock()
        }
        return try body()
    }
}
