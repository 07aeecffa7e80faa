#define _GNU_SOURCE
#include "atoll_mount.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif

int atoll_fsopen(const char *fsname, unsigned int flags) {
    return (int)syscall(SYS_fsopen, fsname, flags);
}

int atoll_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux) {
    return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}

int atoll_fsmount(int fd, unsigned int flags, unsigned int attr_flags) {
    return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}

int atoll_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path,
                     unsigned int flags) {
    return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}

ssize_t atoll_copy_file_range(int fd_in, int fd_out, size_t len) {
    return copy_file_range(fd_in, NULL, fd_out, NULL, len, 0);
}

int atoll_statfs_type(const char *path, int64_t *type) {
    struct statfs st;
    if (statfs(path, &st) != 0) return -1;
    *type = (int64_t)st.f_type;
    return 0;
}

int atoll_first_dirent_type(const char *path) {
    DIR *dir = opendir(path);
    if (dir == NULL) return -1;
    int result = -2;
    struct dirent *entry;
    errno = 0;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        result = entry->d_type;
        break;
    }
    int saved = errno;
    closedir(dir);
    if (entry == NULL && saved != 0) { errno = saved; return -1; }
    return result;
}
