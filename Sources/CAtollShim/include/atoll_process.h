#ifndef ATOLL_PROCESS_H
#define ATOLL_PROCESS_H

#include <sys/types.h>

/// Starts `path` with posix_spawn. Child descriptor i (0 ≤ i < nfds) becomes the parent's
/// descriptor fds[i], or /dev/null when fds[i] < 0; every other descriptor is closed in the child,
/// every signal disposition is reset to its default and the signal mask is cleared (a daemon that
/// ignores SIGPIPE or SIGTERM must not hand that on). With new_session the child starts a new
/// session. Returns 0 and sets *pid, or an errno value.
int atoll_spawn(const char *path, char *const argv[], char *const envp[], const int *fds, int nfds,
                int new_session, pid_t *pid);

/// Connects a SOCK_SEQPACKET unix socket to `path` (which may be /proc/self/fd/N/name to get past
/// the 108-byte limit). Returns the descriptor or -1 and errno.
int atoll_connect_seqpacket(const char *path);

/// Receives one descriptor passed with SCM_RIGHTS on a connected unix socket; -1 and errno.
int atoll_receive_fd(int socket);

/// inotify_init1(IN_CLOEXEC) and a watch for files closed after writing or moved into `path`.
int atoll_inotify_watch_directory(const char *path);

/// Sets a terminal's window size (TIOCSWINSZ); -1 and errno.
int atoll_set_window_size(int fd, unsigned short rows, unsigned short columns);

#endif
