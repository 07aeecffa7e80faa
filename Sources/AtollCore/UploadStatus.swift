import Synchronization

/// Whether the sender of a streamed upload finished or broke off. A reader sees the same end of
/// file either way, so it asks here before it records anything the stream produced.
public final class UploadStatus: Sendable {
    private let aborted = Atomic<Bool>(false)

    public init() {}

    /// Called by the feeder when the sender failed, before it closes the stream.
    public func markAborted() { aborted.store(true, ordering: .sequentiallyConsistent) }

    /// Throws `.cancelled` when the sender broke off before the end of `what`.
    public func ensureComplete(_ what: String) throws {
        if aborted.load(ordering: .sequentiallyConsistent) {
            throw AtollError(.cancelled, "\(what) was cut off before its end: nothing was stored")
        }
    }
}
