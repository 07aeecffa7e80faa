import AtollCore
import Foundation
import Glibc

/// Watches the directory where monitors record exit codes (one file per container, named by its
/// ID) and reports each exit once. Exit files are removed only after the handler returns, so an
/// exit recorded while the daemon was down is reported when the watcher starts.
public final class ExitWatcher: Sendable {
    public typealias Handler = @Sendable (_ id: String, _ exitCode: Int32, _ when: Date) -> Void

    let directory: String
    let inotify: FileDescriptor
    let handler: Handler

    public init(directory: String, handler: @escaping Handler) throws {
        try Syscall.mkdirAll(directory, mode: 0o700)
        self.directory = directory
        self.handler = handler
        inotify = try Syscall.watchDirectory(directory)
    }

    /// Reports exits already recorded, then runs on a thread of its own for the daemon's lifetime.
    public func start() {
        scan()
        let thread = Thread { [self] in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
            defer { buffer.deallocate() }
            while true {
                // The events only say "something changed": the directory listing is the truth.
                guard (try? inotify.read(into: buffer)) ?? 0 > 0 else { return }
                scan()
            }
        }
        thread.name = "atoll.exits"
        thread.start()
    }

    static func isContainerID(_ name: String) -> Bool {
        name.utf8.count == 64 && name.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// Reports every exit file present, then removes it.
    public func scan() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        // conmon writes "ID.XXXXXX" then renames it to "ID" (g_file_set_contents): only the final
        // names count, and a temporary file must never be touched or the rename fails.
        for name in names where Self.isContainerID(name) {
            let path = "\(directory)/\(name)"
            guard let bytes = try? FileSystem.readFile(path, limit: 64) else { continue }
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            // conmon writes the code then closes; an empty file is still being written.
            guard let code = Int32(text) else { continue }
            // The file's time is the exit's (FileManager's attributes would also look up its
            // owner's name in /etc/passwd, on every exit).
            let written = (try? Syscall.stat(path)).map {
                Date(timeIntervalSince1970: Double($0.st_mtim.tv_sec) + Double($0.st_mtim.tv_nsec) / 1e9)
            }
            handler(name, code, written ?? Date())
            unlink(path)
        }
    }
}
