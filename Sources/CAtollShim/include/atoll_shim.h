#ifndef ATOLL_SHIM_H
#define ATOLL_SHIM_H

#include <stdint.h>
#include <sys/types.h>

/// RESOLVE_* flags for openat2(2), spelled out because older libc headers lack them.
#define ATOLL_RESOLVE_NO_XDEV       0x01
#define ATOLL_RESOLVE_NO_MAGICLINKS 0x02
#define ATOLL_RESOLVE_NO_SYMLINKS   0x04
#define ATOLL_RESOLVE_BENEATH       0x08
#define ATOLL_RESOLVE_IN_ROOT       0x10

/// openat2(2) through syscall(2); returns -1 and sets errno on failure.
int atoll_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/// mknodat(2) with a device number built from major and minor.
int atoll_mknodat(int dirfd, const char *path, mode_t mode, unsigned int major, unsigned int minor);

unsigned int atoll_major(dev_t dev);
unsigned int atoll_minor(dev_t dev);

/// ioctl(fd, FICLONE, src): a reflink copy where the file system supports it.
int atoll_ficlone(int dst, int src);

/// Sets a file's atime and mtime (nanoseconds) without following a final symlink.
int atoll_utimensat_nofollow(int dirfd, const char *path, int64_t atime_sec, long atime_nsec,
                             int64_t mtime_sec, long mtime_nsec);

/// fchownat without following a final symlink.
int atoll_lchownat(int dirfd, const char *path, uid_t uid, gid_t gid);

/// pipe2(O_CLOEXEC), then F_SETPIPE_SZ to `size` bytes on a best-effort basis.
int atoll_pipe_cloexec(int fds[2], int size);

/// The errno of the calling thread (Swift cannot read the macro reliably).
int atoll_errno(void);

#include "atoll_mount.h"
#include "atoll_process.h"

#endif
