#define _GNU_SOURCE
#include "atoll_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct atoll_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

int atoll_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct atoll_open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int atoll_mknodat(int dirfd, const char *path, mode_t mode, unsigned int major, unsigned int minor) {
    return mknodat(dirfd, path, mode, makedev(major, minor));
}

unsigned int atoll_major(dev_t dev) { return major(dev); }
unsigned int atoll_minor(dev_t dev) { return minor(dev); }

int atoll_ficlone(int dst, int src) { return ioctl(dst, FICLONE, src); }

int atoll_utimensat_nofollow(int dirfd, const char *path, int64_t atime_sec, long atime_nsec,
                             int64_t mtime_sec, long mtime_nsec) {
    struct timespec ts[2] = {
        { .tv_sec = (time_t)atime_sec, .tv_nsec = atime_nsec },
        { .tv_sec = (time_t)mtime_sec, .tv_nsec = mtime_nsec },
    };
    return utimensat(dirfd, path, ts, AT_SYMLINK_NOFOLLOW);
}

int atoll_lchownat(int dirfd, const char *path, uid_t uid, gid_t gid) {
    return fchownat(dirfd, path, uid, gid, AT_SYMLINK_NOFOLLOW);
}

int atoll_pipe_cloexec(int fds[2], int size) {
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    (void)fcntl(fds[1], F_SETPIPE_SZ, size);
    return 0;
}

int atoll_errno(void) { return errno; }
