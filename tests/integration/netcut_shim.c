/*
 * netcut_shim.c — an LD_PRELOAD library for tests: a featd cut off from its
 * Kafka brokers (and only from them) while its clients still reach it, as
 * a network partition between it and the brokers would.
 *
 * While the file named by FEATD_NETCUT_TRIGGER exists, connect() to a port
 * listed in FEATD_NETCUT_PORTS ("9092,9093") fails with ECONNREFUSED, and
 * sendmsg()/recvmsg() on a socket connected to one fail with ECONNRESET (the
 * calls librdkafka makes; gRPC's sockets go to other ports and are
 * untouched).  Without both variables it does nothing.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int listed(const struct sockaddr *sa) {
    const char *ports = getenv("FEATD_NETCUT_PORTS"), *trigger = getenv("FEATD_NETCUT_TRIGGER");
    struct stat st;
    if (!ports || !trigger || !sa || stat(trigger, &st) != 0) return 0;
    unsigned port;
    if (sa->sa_family == AF_INET) port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    else if (sa->sa_family == AF_INET6) port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    else return 0;
    for (const char *p = ports; *p;) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p) break;
        if (v == port) return 1;
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

static int peer_listed(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    return getpeername(fd, (struct sockaddr *)&ss, &len) == 0 && listed((struct sockaddr *)&ss);
}

int connect(int fd, const struct sockaddr *sa, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    if (listed(sa)) {
        errno = ECONNREFUSED;
        return -1;
    }
    return real(fd, sa, len);
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags) {
    static ssize_t (*real)(int, const struct msghdr *, int);
    if (!real) real = (ssize_t (*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
    if (peer_listed(fd)) {
        errno = ECONNRESET;
        return -1;
    }
    return real(fd, m, flags);
}

ssize_t recvmsg(int fd, struct msghdr *m, int flags) {
    static ssize_t (*real)(int, struct msghdr *, int);
    if (!real) real = (ssize_t (*)(int, struct msghdr *, int))dlsym(RTLD_NEXT, "recvmsg");
    if (peer_listed(fd)) {
        errno = ECONNRESET;
        return -1;
    }
    return real(fd, m, flags);
}
