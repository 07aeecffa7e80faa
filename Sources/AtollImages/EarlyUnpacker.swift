import AtollCore
import AtollOCI
import AtollStorage
import Dispatch
import Foundation
import Synchronization

/// Unpacks layer blobs while the rest of an archive is still arriving, each into a parentless
/// snapshot (for drivers that can rebase): by the time the manifests say which blob is which
/// layer, most are unpacked already. A blob is taken for a layer by its first bytes (a tar header,
/// or gzip or zstd magic); what turns out not to be needed is removed by `discardUnused()`.
final class EarlyUnpacker: Sendable {
    struct Unpacked: Sendable {
        var key: String
        var result: Result<AppliedLayer, any Error>
    }

    private let service: ImageService
    private let lanes: [DispatchQueue]
    private let group = DispatchGroup()
    private struct State {
        var submitted = 0
        var done: [Digest: Unpacked] = [:]
        var taken: Set<Digest> = []
    }
    private let state = Mutex(State())

    init(service: ImageService) {
        self.service = service
        let count = max(1, ProcessInfo.processInfo.activeProcessorCount)
        lanes = (0..<count).map { DispatchQueue(label: "atoll.early-unpack.\($0)") }
    }

    /// Whether a blob whose content starts with `prefix` looks like a layer.
    static func looksLikeLayer(_ prefix: [UInt8]) -> Bool {
        if LayerCompression.detect(prefix) != .none { return true }
        // POSIX tar: "ustar" at offset 257 of the first header.
        return prefix.count >= 262 && Array(prefix[257..<262]) == Array("ustar".utf8)
    }

    /// Starts unpacking a blob just stored, if it looks like a layer and is not being unpacked yet.
    func offer(_ digest: Digest, prefix: [UInt8]) {
        guard Self.looksLikeLayer(prefix) else { return }
        let lane: DispatchQueue? = state.withLock { state in
            guard state.done[digest] == nil else { return nil }
            state.done[digest] = Unpacked(key: "", result: .failure(AtollError.internalError("unpacking")))
            state.submitted += 1
            return lanes[state.submitted % lanes.count]
        }
        guard let lane else { return }
        let key = "extract-\(Identifier.random().prefix(12))-early"
        lane.async(group: group) { [self] in
            let result = Result { try service.unpackDetached(digest, key: key) }
            state.withLock { $0.done[digest] = Unpacked(key: key, result: result) }
        }
    }

    /// Waits for every unpack in flight.
    func wait() { group.wait() }

    /// The unpacked snapshot of a layer blob, once: the caller owns the snapshot from then on.
    func take(_ digest: Digest) -> Unpacked? {
        state.withLock { state in
            guard let unpacked = state.done[digest], !unpacked.key.isEmpty,
                state.taken.insert(digest).inserted
            else { return nil }
            return unpacked
        }
    }

    /// Removes the snapshots nobody took (blobs that were not layers, or layers already present).
    func discardUnused() {
        wait()
        let unused = state.withLock { state in
            state.done.filter { !state.taken.contains($0.key) && !$0.value.key.isEmpty }.map(\.value.key)
        }
        for key in unused {
            do { try service.snapshotter.remove(key) } catch {
                service.logger.warning("cannot remove unused snapshot \(key) (the next start sweeps it): \(error)")
            }
        }
    }
}
