/* admin/loop.c — see loop.h. */
#include "admin/loop.h"

#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/worker.h"

int feat_listen_tcp(const char *addr, const char *key, int *port, char *errstr, size_t errlen) {
    char host[256];
    const char *colon = strrchr(addr, ':');
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    if (!colon || hl >= sizeof(host)) {
        snprintf(errstr, errlen, "%s: \"%s\" is not host:port", key, addr);
        return -1;
    }
    memcpy(host, addr, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai) != 0 || !ai) {
        snprintf(errstr, errlen, "%s: cannot resolve \"%s\"", key, addr);
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 511) != 0 ||
        evutil_make_socket_nonblocking(fd) != 0) {
        snprintf(errstr, errlen, "%s: cannot listen on %s", key, addr);
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    event_base_loopbreak(arg);
}

int feat_loop_open(feat_loop_t *l) {
    memset(l, 0, sizeof(*l));
    if (!(l->base = event_base_new())) return -1;
    if (!(l->stop = event_new(l->base, -1, 0, stop_cb, l->base))) return -1;
    return 0;
}

static void *run(void *arg) {
    feat_loop_t *l = arg;
    event_base_dispatch(l->base);
    return NULL;
}

int feat_loop_start(feat_loop_t *l, const char *name) {
    if (feat_worker_start(&l->thr, name, run, l)) return -1;
    l->started = 1;
    return 0;
}

void feat_loop_stop(feat_loop_t *l) {
    if (l->stop) event_active(l->stop, EV_READ, 0);
}

void feat_loop_join(feat_loop_t *l) {
    if (l->started) feat_worker_join(l->thr);
    l->started = 0;
}

void feat_loop_free(feat_loop_t *l) {
    if (l->stop) event_free(l->stop);
    if (l->base) event_base_free(l->base);
    l->stop = NULL;
    l->base = NULL;
}
