import AtollCore
import AtollOCI
import CAtollShim
import Foundation
import Glibc
import Testing

@testable import AtollStorage

/// A manual measurement, not a test of speed: `ATOLL_LAYER_BENCH=1 swift test --filter LayerBenchmark`
/// prints unpack throughput for a ~100 MB layer of many small files. It asserts nothing on time.
@Suite struct LayerBenchmarkTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["ATOLL_LAYER_BENCH"] != nil))
    func unpackThroughputOfManySmallFiles() throws {
        let fixture = try LayerFixture()
        let tar = try fixture.tar(
            "big.tar",
            """
            import os
            blob = os.urandom(1 << 20)
            n = 0
            for i in range(200):
                d('dir%03d' % i)
                for j in range(120):
                    size = 1024 + (n * 7919) % 6144
                    add('dir%03d/file%04d' % (i, j), data=blob[n % 1000 * 1000:][:size])
                    n += 1
            """)
        for compression in [LayerCompression.none, .gzip, .zstd] {
            let blob = try fixture.compress(tar, compression)
            // ATOLL_LAYER_BENCH=/dev/shm measures on tmpfs, without the disk's inode allocator.
            let benchDir = ProcessInfo.processInfo.environment["ATOLL_LAYER_BENCH"] ?? "1"
            let root =
                benchDir.hasPrefix("/") ? benchDir + "/atoll-bench-root" : try fixture.directory("root-\(compression)")
            try Syscall.mkdirAll(root)
            let start = ContinuousClock.now
            let applied = try fixture.apply(blob, to: root)
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print(
                "unpack \(compression): \(applied.uncompressedSize >> 20) MiB in \(String(format: "%.2f", seconds)) s = \(String(format: "%.0f", Double(applied.uncompressedSize) / 1e6 / seconds)) MB/s"
            )
            let out = fixture.path + "/diff-\(compression)"
            let diffStart = ContinuousClock.now
            _ = try Layer.diff(
                lowerDirectory: nil, upperDirectory: root,
                to: Syscall.open(out, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600), compression: compression)
            let diffElapsed = ContinuousClock.now - diffStart
            print("diff \(compression): \(diffElapsed)")
            try FileSystem.removeTree(root)
        }
    }
}
