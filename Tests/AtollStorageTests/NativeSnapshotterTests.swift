import AtollCore
import CAtollShim
import Foundation
import Glibc
import Testing

@testable import AtollStorage

@Suite struct NativeSnapshotterTests {
    @Test func aChildCopiesOwnershipModesTimesXattrsLinksAndDevices() throws {
        try withTemporaryDirectory { root in
            let s = try NativeSnapshotter(root: root + "/native")
            let target = root + "/mnt"
            try withMounted(try s.prepare("base", parent: nil, labels: [:]), at: target) { () throws in
                try Syscall.mkdir(target + "/dir", mode: 0o750)
                try writeFile(target + "/dir/suid", "binary")
                #expect(chown(target + "/dir/suid", 1234, 5678) == 0)
                #expect(chmod(target + "/dir/suid", 0o4755) == 0)
                #expect(chmod(target + "/dir", 0o1750) == 0)
                try CopySyscall.setAttribute(target + "/dir/suid", "user.atoll", Array("value".utf8))
                #expect(link(target + "/dir/suid", target + "/hardlink") == 0)
                #expect(symlink("/etc/passwd", target + "/symlink") == 0)
                #expect(atoll_lchownat(AT_FDCWD, target + "/symlink", 42, 43) == 0)
                #expect(atoll_mknodat(AT_FDCWD, target + "/null", S_IFCHR | 0o666, 1, 3) == 0)
                #expect(mkfifo(target + "/fifo", 0o640) == 0)
                #expect(
                    atoll_utimensat_nofollow(AT_FDCWD, target + "/dir/suid", 1_000_000, 5, 1_500_000_000, 123_456_789)
                        == 0)
            }
            try s.commit("base-c", key: "base", labels: [:])
            _ = try s.prepare("child", parent: "base-c", labels: [:])
            let parent = try s.dataDirectory("base-c")
            let child = try s.dataDirectory("child")
            #expect(parent != child)

            let file = try Syscall.stat(child + "/dir/suid", followSymlinks: false)
            #expect(file.st_uid == 1234 && file.st_gid == 5678)
            #expect(file.st_mode & 0o7777 == 0o4755)
            #expect(file.st_mtim.tv_sec == 1_500_000_000 && file.st_mtim.tv_nsec == 123_456_789)
            #expect(try readText(child + "/dir/suid") == "binary")
            #expect(try CopySyscall.attribute(child + "/dir/suid", "user.atoll") == Array("value".utf8))
            #expect(try Syscall.stat(child + "/dir").st_mode & 0o7777 == 0o1750)

            let hardlink = try Syscall.stat(child + "/hardlink", followSymlinks: false)
            #expect(hardlink.st_ino == file.st_ino)
            #expect(file.st_ino != (try Syscall.stat(parent + "/dir/suid").st_ino))

            let symlinkStat = try Syscall.stat(child + "/symlink", followSymlinks: false)
            #expect(symlinkStat.st_mode & S_IFMT == S_IFLNK)
            #expect(symlinkStat.st_uid == 42 && symlinkStat.st_gid == 43)
            #expect(try Syscall.readlink(child + "/symlink") == "/etc/passwd")

            let device = try Syscall.stat(child + "/null", followSymlinks: false)
            #expect(device.st_mode & S_IFMT == S_IFCHR)
            #expect(atoll_major(device.st_rdev) == 1 && atoll_minor(device.st_rdev) == 3)
            let fifo = try Syscall.stat(child + "/fifo", followSymlinks: false)
            #expect(fifo.st_mode & S_IFMT == S_IFIFO && fifo.st_mode & 0o777 == 0o640)

            // Writing into the child does not change the parent (no shared inodes).
            try writeFile(child + "/dir/suid", "changed")
            #expect(try readText(parent + "/dir/suid") == "binary")
        }
    }
}
