#define _GNU_SOURCE
#include "atoll_netns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/// Runs `body(arg)` on a new pthread and waits for it; the thread's namespace changes die with it.
static int run_on_fresh_thread(void *(*body)(void *), void *arg) {
    pthread_t thread;
    int err = pthread_create(&thread, NULL, body, arg);
    if (err != 0) { errno = err; return -1; }
    err = pthread_join(thread, NULL);
    if (err != 0) { errno = err; return -1; }
    return 0;
}

struct netns_create_job {
    const char *path;
    int result;
    int error;
};

static void *netns_create_thread(void *arg) {
    struct netns_create_job *job = arg;
    if (unshare(CLONE_NEWNET) != 0) {
        job->error = errno;
        return NULL;
    }
    if (mount("/proc/thread-self/ns/net", job->path, "none", MS_BIND, NULL) != 0) {
        job->error = errno;
        return NULL;
    }
    job->result = 0;
    return NULL;
}

int atoll_netns_create(const char *path) {
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    close(fd);

    struct netns_create_job job = {.path = path, .result = -1, .error = 0};
    if (run_on_fresh_thread(netns_create_thread, &job) != 0) {
        int saved = errno;
        unlink(path);
        errno = saved;
        return -1;
    }
    if (job.result != 0) {
        unlink(path);
        errno = job.error;
        return -1;
    }
    return 0;
}

struct socket_job {
    int nsfd, domain, type, protocol;
    int result;
    int error;
};

static void *socket_thread(void *arg) {
    struct socket_job *job = arg;
    if (setns(job->nsfd, CLONE_NEWNET) != 0) {
        job->error = errno;
        return NULL;
    }
    job->result = socket(job->domain, job->type, job->protocol);
    if (job->result < 0) job->error = errno;
    return NULL;
}

int atoll_socket_in_netns(int nsfd, int domain, int type, int protocol) {
    struct socket_job job = {
        .nsfd = nsfd, .domain = domain, .type = type, .protocol = protocol, .result = -1, .error = 0};
    if (run_on_fresh_thread(socket_thread, &job) != 0) return -1;
    if (job.result < 0) {
        errno = job.error;
        return -1;
    }
    return job.result;
}

int atoll_netlink_open(int protocol, int nsfd, int timeout_seconds) {
    int type = SOCK_RAW | SOCK_CLOEXEC;
    int fd = nsfd >= 0 ? atoll_socket_in_netns(nsfd, AF_NETLINK, type, protocol)
                       : socket(AF_NETLINK, type, protocol);
    if (fd < 0) return -1;

    struct sockaddr_nl local;
    memset(&local, 0, sizeof local);
    local.nl_family = AF_NETLINK;
    int one = 1;
    struct timeval timeout = {.tv_sec = timeout_seconds, .tv_usec = 0};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0
        || setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one) != 0
        || setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one) != 0
        || (timeout_seconds > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

ssize_t atoll_netlink_send(int fd, const void *buffer, size_t length) {
    return send(fd, buffer, length, 0);
}

ssize_t atoll_netlink_receive(int fd, void *buffer, size_t length, int peek) {
    return recv(fd, buffer, length, peek ? (MSG_PEEK | MSG_TRUNC) : 0);
}

void atoll_describe_errno(int error, char *buffer, size_t length) {
    if (length == 0) return;
    const char *text = strerror(error);
    strncpy(buffer, text, length - 1);
    buffer[length - 1] = '\0';
}
