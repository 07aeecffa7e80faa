#define _GNU_SOURCE
#include "atoll_layer.h"

#include <sys/xattr.h>

int atoll_fsetxattr(int fd, const char *name, const void *value, size_t size) {
    return fsetxattr(fd, name, value, size, 0);
}
int atoll_lsetxattr(const char *path, const char *name, const void *value, size_t size) {
    return lsetxattr(path, name, value, size, 0);
}
ssize_t atoll_fgetxattr(int fd, const char *name, void *value, size_t size) {
    return fgetxattr(fd, name, value, size);
}
ssize_t atoll_lgetxattr(const char *path, const char *name, void *value, size_t size) {
    return lgetxattr(path, name, value, size);
}
ssize_t atoll_llistxattr(const char *path, char *list, size_t size) {
    return llistxattr(path, list, size);
}
