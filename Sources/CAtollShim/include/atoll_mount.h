#ifndef ATOLL_MOUNT_H
#define ATOLL_MOUNT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// Constants of the new mount API (linux/mount.h), spelled out so that no kernel header is needed.
#define ATOLL_FSCONFIG_SET_FLAG    0
#define ATOLL_FSCONFIG_SET_STRING  1
#define ATOLL_FSCONFIG_CMD_CREATE  6
#define ATOLL_FSOPEN_CLOEXEC       0x00000001
#define ATOLL_FSMOUNT_CLOEXEC      0x00000001
#define ATOLL_MOUNT_ATTR_RDONLY    0x00000001
#define ATOLL_MOUNT_ATTR_NOSUID    0x00000002
#define ATOLL_MOUNT_ATTR_NODEV     0x00000004
#define ATOLL_MOUNT_ATTR_NOEXEC    0x00000008
#define ATOLL_MOVE_MOUNT_F_EMPTY_PATH 0x00000004

/// fsopen(2), fsconfig(2), fsmount(2) and move_mount(2) through syscall(2); -1 and errno on failure.
int atoll_fsopen(const char *fsname, unsigned int flags);
int atoll_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux);
int atoll_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
int atoll_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path,
                     unsigned int flags);

/// copy_file_range(2) between two descriptors at their current offsets.
ssize_t atoll_copy_file_range(int fd_in, int fd_out, size_t len);

/// Extended attributes of a path, never following a final symlink.

/// statfs(2): the file system's magic number (f_type); -1 and errno on failure.
int atoll_statfs_type(const char *path, int64_t *type);

/// The d_type of the first entry other than . and .. in the directory at `path`
/// (DT_UNKNOWN = 0 when the file system does not fill it in); -1 and errno on failure,
/// -2 when the directory is empty.
int atoll_first_dirent_type(const char *path);

#endif
