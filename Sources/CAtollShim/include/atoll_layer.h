#ifndef ATOLL_LAYER_H
#define ATOLL_LAYER_H

#include <stddef.h>
#include <sys/types.h>

/// O_PATH, which Swift's Glibc module hides (it needs _GNU_SOURCE).
#define ATOLL_O_PATH 010000000

/// Extended-attribute calls (sys/xattr.h is not part of Swift's Glibc module).
/// Each returns -1 and sets errno on failure.
int atoll_fsetxattr(int fd, const char *name, const void *value, size_t size);
int atoll_lsetxattr(const char *path, const char *name, const void *value, size_t size);
ssize_t atoll_fgetxattr(int fd, const char *name, void *value, size_t size);
ssize_t atoll_lgetxattr(const char *path, const char *name, void *value, size_t size);
ssize_t atoll_llistxattr(const char *path, char *list, size_t size);

#endif
