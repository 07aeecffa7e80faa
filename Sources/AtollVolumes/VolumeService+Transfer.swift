import AtollCore
import AtollStorage
import Foundation
import Glibc

extension VolumeService {
    // MARK: - Export and import

    /// Writes the volume's content as an uncompressed tar (names relative to its root).
    package func export(_ name: String, to output: FileDescriptor) throws {
        _ = try get(name)
        try Layer.archive(entry: nil, inDirectory: dataPath(name), to: output)
    }

    /// Replaces the volume's content with a tar (plain, gzip or zstd) read from `input`. The tar
    /// is unpacked aside and swapped in only once whole, so a bad or cut-off archive leaves the
    /// old content as it was. The caller makes sure no container runs with the volume.
    package func importContent(_ name: String, from input: FileDescriptor, upload: UploadStatus?) throws {
        let record = try get(name)
        if !record.options.isEmpty {
            throw AtollError.failedPrecondition(
                "volume \"\(name)\" mounts a file system (\(record.options["type"] ?? "")): import into a volume without options"
            )
        }
        try locks.withLock(name) {
            let staging = "\(directory)/.import-\(Identifier.random().prefix(16))"
            let old = "\(directory)/.removing-\(Identifier.random().prefix(16))"
            try Syscall.mkdir(staging, mode: 0o700)
            do {
                try Syscall.mkdir("\(staging)/_data", mode: 0o755)
                try Layer.apply(from: input, toDirectory: "\(staging)/_data", whiteouts: .plain)
                try upload?.ensureComplete("the archive for volume \(name)")
                try Syscall.rename(from: dataPath(name), to: old)
            } catch {
                try? FileSystem.removeTree(staging)
                throw AtollError(
                    (error as? AtollError)?.code ?? .invalidArgument, "cannot import into volume \"\(name)\"",
                    cause: error)
            }
            do {
                try Syscall.rename(from: "\(staging)/_data", to: dataPath(name))
            } catch {
                try? Syscall.rename(from: old, to: dataPath(name))
                try? FileSystem.removeTree(staging)
                throw error
            }
            try? FileSystem.removeTree(staging)
            try? FileSystem.removeTree(old)
        }
    }
}
