import Glibc
import Testing

@testable import AtollCore

@Suite struct DigestTests {
    @Test func theDigestOfKnownBytesIsTheKnownValue() throws {
        #expect(
            Digest.sha256(of: Array("abc".utf8)).description
                == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func parsingRoundTrips() throws {
        let text = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        let digest = try Digest(parsing: text)
        #expect(digest.description == text)
        #expect(digest == Digest.sha256(of: [UInt8]()))
        #expect(digest.shortID == "e3b0c44298fc")
    }

    @Test(arguments: [
        "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:e3b0c442",
        "sha256:../../../../etc/passwd/../../../../../../../../../../../../../../../",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ])
    func malformedDigestsAreRejected(_ text: String) {
        #expect(throws: AtollError.self) { try Digest(parsing: text) }
    }

    @Test func incrementalHashingMatchesOneShot() {
        var hasher = DigestHasher()
        hasher.update(Array("ab".utf8))
        hasher.update(Array("c".utf8))
        #expect(hasher.finalize() == Digest.sha256(of: Array("abc".utf8)))
        #expect(hasher.count == 3)
    }
}

@Suite struct FileSystemTests {
    @Test func removeTreeDoesNotFollowSymlinksOutOfTheTree() throws {
        let base = "/tmp/atoll-fs-test-\(Identifier.random().prefix(8))"
        try Syscall.mkdirAll("\(base)/tree/sub")
        try Syscall.mkdirAll("\(base)/outside")
        try FileSystem.writeFileAtomically("\(base)/outside/keep", Array("keep".utf8))
        try FileSystem.writeFileAtomically("\(base)/tree/sub/file", Array("x".utf8))
        #expect(symlink("\(base)/outside", "\(base)/tree/link") == 0)
        try FileSystem.removeTree("\(base)/tree")
        #expect(!FileSystem.exists("\(base)/tree"))
        #expect(try FileSystem.readFile("\(base)/outside/keep") == Array("keep".utf8))
        try FileSystem.removeTree(base)
        try FileSystem.removeTree(base)  // a missing path is not an error
    }

    @Test func aLockFileRefusesASecondHolderAndNamesTheFirst() throws {
        let path = "/tmp/atoll-lock-test-\(Identifier.random().prefix(8))"
        defer { unlink(path) }
        let first = try LockFile(path: path, purpose: "the test root")
        #expect {
            _ = try LockFile(path: path, purpose: "the test root")
        } throws: { error in
            "\(error)".contains("the test root is already in use") && "\(error)".contains("pid \(getpid())")
        }
        first.release()
        _ = try LockFile(path: path, purpose: "the test root")
    }
}
