import AtollCore
import Foundation
import Glibc
import Synchronization
import Testing

@testable import AtollStorage

@Suite struct ContentStoreTests {
    @Test func ingestedBytesCanBeReadBackAndAreReadOnly() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let bytes = Array("{\"schemaVersion\":2}".utf8)
            let blob = try store.ingest(bytes: bytes)
            #expect(blob == ContentDescriptor(digest: Digest.sha256(of: bytes), size: Int64(bytes.count)))
            #expect(store.contains(blob.digest))
            #expect(store.path(for: blob.digest) == "\(root)/blobs/sha256/\(blob.digest.hex)")
            #expect(try store.read(blob.digest) == bytes)
            #expect(try store.info(blob.digest).size == Int64(bytes.count))
            let mode = try Syscall.stat(store.path(for: blob.digest)).st_mode & 0o777
            #expect(mode == 0o444)
            #expect(try store.list().map(\.digest) == [blob.digest])
            #expect(try FileSystem.listDirectory(Syscall.open(root + "/ingest", flags: O_RDONLY | O_DIRECTORY)).isEmpty)
        }
    }

    @Test func aDigestMismatchThrowsDataLossAndLeavesNothing() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let wrong = Digest.sha256(of: Array("other".utf8))
            let writer = try store.writer(expected: wrong)
            try writer.write(Array("content".utf8))
            let message = errorMessage { try writer.commit() }
            #expect(message?.contains(wrong.description) == true)
            #expect(message?.contains(Digest.sha256(of: Array("content".utf8)).description) == true)
            #expect(errorCode { try store.ingest(bytes: Array("content".utf8), expected: wrong) } == .dataLoss)
            #expect(!store.contains(wrong))
            #expect(try store.list().isEmpty)
            #expect(try ingestEntries(root).isEmpty)
        }
    }

    @Test func aSizeMismatchThrowsDataLossAndLeavesNothing() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let short = try store.writer(expectedSize: 10)
            try short.write(Array("12345".utf8))
            #expect(errorCode { try short.commit() } == .dataLoss)
            let long = try store.writer(expectedSize: 3)
            #expect(errorCode { try long.write(Array("12345".utf8)) } == .dataLoss)
            #expect(errorCode { try long.commit() } == .failedPrecondition)
            #expect(try store.list().isEmpty)
            #expect(try ingestEntries(root).isEmpty)
        }
    }

    @Test func abortedAndAbandonedWritersLeaveNoFile() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let aborted = try store.writer()
            try aborted.write(Array("partial".utf8))
            #expect(FileSystem.exists(aborted.temporaryPath))
            aborted.abort()
            #expect(!FileSystem.exists(aborted.temporaryPath))
            var abandonedPath = ""
            do {
                let abandoned = try store.writer()
                try abandoned.write(Array("partial".utf8))
                abandonedPath = abandoned.temporaryPath
            }
            #expect(!abandonedPath.isEmpty && !FileSystem.exists(abandonedPath))
            #expect(try ingestEntries(root).isEmpty)
        }
    }

    @Test func aWriterRefusesToGoPastItsLimit() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let writer = try store.writer(limit: 4)
            try writer.write(Array("1234".utf8))
            #expect(errorCode { try writer.write(Array("5".utf8)) } == .resourceExhausted)
            #expect(try ingestEntries(root).isEmpty)
            #expect(errorCode { _ = try store.writer(expectedSize: 5, limit: 4) } == .resourceExhausted)
        }
    }

    @Test func ingestOfAnExistingBlobDoesNotCallTheProducer() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let bytes = Array("layer".utf8)
            let blob = try store.ingest(bytes: bytes)
            var called = false
            let again = try store.ingest(expected: blob.digest, expectedSize: 5) { _ in called = true }
            #expect(!called)
            #expect(again == blob)
        }
    }

    @Test func concurrentIngestsOfOneBlobDoTheWorkOnce() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let bytes = [UInt8](repeating: 7, count: 1 << 20)
            let digest = Digest.sha256(of: bytes)
            let calls = Shared<Int>(0)
            let results = Shared<[ContentDescriptor]>([])
            let failures = Shared<Int>(0)
            let threads = 8
            DispatchQueue.concurrentPerform(iterations: threads) { _ in
                do {
                    let blob = try store.ingest(expected: digest, expectedSize: Int64(bytes.count)) { writer in
                        calls.update { $0 += 1 }
                        for chunk in 0..<16 {
                            try writer.write(Array(bytes[(chunk << 16)..<((chunk + 1) << 16)]))
                            usleep(5_000)
                        }
                    }
                    results.update { $0.append(blob) }
                } catch {
                    failures.update { $0 += 1 }
                }
            }
            #expect(calls.value == 1)
            #expect(failures.value == 0)
            let all = results.value
            #expect(all.count == threads)
            #expect(Set(all) == [ContentDescriptor(digest: digest, size: Int64(bytes.count))])
            #expect(try store.read(digest, limit: 2 << 20) == bytes)
        }
    }

    @Test func aWaitingIngestDoesTheWorkWhenTheFirstOneFails() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let bytes = Array("retry me".utf8)
            let digest = Digest.sha256(of: bytes)
            let calls = Shared<Int>(0)
            let firstStarted = DispatchSemaphore(value: 0)
            let releaseFirst = DispatchSemaphore(value: 0)
            let firstOutcome = Shared<AtollError.Code?>(nil)
            let group = DispatchGroup()
            DispatchQueue.global().async(group: group) {
                let code = errorCode {
                    try store.ingest(expected: digest) { writer in
                        calls.update { $0 += 1 }
                        firstStarted.signal()
                        releaseFirst.wait()
                        try writer.write(Array("garbage".utf8))
                    }
                }
                firstOutcome.update { $0 = code }
            }
            firstStarted.wait()
            let second = Shared<ContentDescriptor?>(nil)
            DispatchQueue.global().async(group: group) {
                let blob = try? store.ingest(expected: digest) { writer in
                    calls.update { $0 += 1 }
                    try writer.write(bytes)
                }
                second.update { $0 = blob }
            }
            usleep(100_000)
            #expect(calls.value == 1)  // the second one is waiting
            releaseFirst.signal()
            group.wait()
            #expect(firstOutcome.value == .dataLoss)
            #expect(second.value == ContentDescriptor(digest: digest, size: Int64(bytes.count)))
            #expect(calls.value == 2)
        }
    }

    @Test func garbageCollectionKeepsOnlyWhatIsKept() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let kept = try store.ingest(bytes: Array("kept".utf8))
            let dropped1 = try store.ingest(bytes: Array("dropped one".utf8))
            let dropped2 = try store.ingest(bytes: Array("dropped two".utf8))
            try writeFile(root + "/blobs/sha256/not-a-digest", "junk")
            let inFlight = try store.writer()
            try inFlight.write(Array("in flight".utf8))

            let result = try store.garbageCollect(keeping: [kept.digest])
            #expect(Set(result.removed) == [dropped1.digest, dropped2.digest])
            #expect(result.bytes == dropped1.size + dropped2.size)
            #expect(try store.list().map(\.digest) == [kept.digest])
            #expect(FileSystem.exists(root + "/blobs/sha256/not-a-digest"))
            #expect(FileSystem.exists(inFlight.temporaryPath))
            let late = try inFlight.commit()
            #expect(store.contains(late.digest))
        }
    }

    @Test func aBlobCorruptedOnDiskIsDetectedOnRead() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let blob = try store.ingest(bytes: Array("{\"config\":{}}".utf8))
            let path = store.path(for: blob.digest)
            chmod(path, 0o644)
            let fd = try Syscall.open(path, flags: O_WRONLY)
            _ = Glibc.pwrite(fd.rawValue, "X", 1, 3)
            fd.close()
            let message = errorMessage { _ = try store.read(blob.digest) }
            #expect(errorCode { _ = try store.read(blob.digest) } == .dataLoss)
            #expect(message?.contains(blob.digest.description) == true)
            #expect(errorCode { _ = try store.read(blob.digest, limit: 3) } == .resourceExhausted)
        }
    }

    @Test func reopeningTheStoreRemovesStaleIngestFilesAndKeepsBlobs() throws {
        try withTemporaryDirectory { root in
            let blob = try ContentStore(root: root).ingest(bytes: Array("durable".utf8))
            try writeFile(root + "/ingest/left-by-a-crash", "half")
            let store = try ContentStore(root: root)
            #expect(try ingestEntries(root).isEmpty)
            #expect(try store.read(blob.digest) == Array("durable".utf8))
        }
    }

    @Test func listIgnoresForeignNamesAndSymlinks() throws {
        try withTemporaryDirectory { root in
            let store = try ContentStore(root: root)
            let blob = try store.ingest(bytes: Array("real".utf8))
            try writeFile(root + "/secret", "outside")
            let linkHex = Digest.sha256(of: Array("outside".utf8)).hex
            symlink(root + "/secret", root + "/blobs/sha256/" + linkHex)
            try writeFile(root + "/blobs/sha256/README", "junk")
            #expect(try store.list().map(\.digest) == [blob.digest])
            let linked = try Digest(hex: linkHex)
            #expect(!store.contains(linked))
            #expect(errorCode { _ = try store.read(linked) } == .dataLoss)
            try store.delete(blob.digest)
            #expect(errorCode { try store.delete(blob.digest) } == .notFound)
            #expect(errorCode { _ = try store.info(blob.digest) } == .notFound)
        }
    }

    private func ingestEntries(_ root: String) throws -> [String] {
        try FileSystem.listDirectory(Syscall.open(root + "/ingest", flags: O_RDONLY | O_DIRECTORY)).map(\.name)
    }
}
