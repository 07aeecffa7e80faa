#ifndef ATOLL_NETNS_H
#define ATOLL_NETNS_H

#include <stddef.h>
#include <sys/types.h>

/// umount2's MNT_DETACH, spelled out for modules that do not import Glibc.
#define ATOLL_MNT_DETACH 2

/// Netlink protocol numbers (linux/netlink.h).
#define ATOLL_NETLINK_ROUTE 0

/// Creates a new network namespace and pins it at `path`: the file is created (O_EXCL, so an
/// existing path fails with EEXIST), then a fresh pthread unshares CLONE_NEWNET and bind-mounts
/// /proc/thread-self/ns/net onto it and exits. No other thread of the process changes namespace.
/// On failure nothing is left behind. Returns 0, or -1 and sets errno.
int atoll_netns_create(const char *path);

/// socket(domain, type, protocol) created on a fresh pthread that has setns()'d into the network
/// namespace `nsfd`; the socket stays bound to that namespace. The calling thread never changes
/// namespace. Returns the descriptor, or -1 and sets errno.
int atoll_socket_in_netns(int nsfd, int domain, int type, int protocol);

/// A NETLINK socket of `protocol` (SOCK_RAW | SOCK_CLOEXEC) in the network namespace `nsfd`, or in
/// the caller's when `nsfd` < 0. It is bound (the kernel picks the port id), asks for extended
/// acknowledgements without the echoed request (NETLINK_EXT_ACK, NETLINK_CAP_ACK), and has a
/// receive timeout of `timeout_seconds`. Returns the descriptor, or -1 and sets errno.
int atoll_netlink_open(int protocol, int nsfd, int timeout_seconds);

/// send(2) of one netlink datagram to the kernel; -1 and errno on failure.
ssize_t atoll_netlink_send(int fd, const void *buffer, size_t length);

/// recv(2) of one netlink datagram. With `peek` the datagram stays queued (MSG_PEEK) and the
/// result is its full length even when larger than `length` (MSG_TRUNC), so a caller can size its
/// buffer. -1 and errno on failure (EAGAIN on timeout).
ssize_t atoll_netlink_receive(int fd, void *buffer, size_t length, int peek);

/// strerror(3) of `error`, copied into `buffer` (always NUL-terminated).
void atoll_describe_errno(int error, char *buffer, size_t length);

#endif
