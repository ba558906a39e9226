/*
 * admin/loop.h — what the listeners beside gRPC share (the HTTP/JSON API,
 * api.c; the Redis protocol, redis.c): a listening TCP socket, and event
 * loops on threads of their own that a destroy can stop at any time.
 *
 * Each loop's base is its thread's alone; feat_loop_stop may be called from
 * any thread (it activates the loop's stop event: an activation before the
 * loop dispatches is kept, where event_base_loopbreak's would be lost).
 */
#ifndef FEAT_ADMIN_LOOP_H
#define FEAT_ADMIN_LOOP_H

#include <pthread.h>
#include <stddef.h>

struct event_base;
struct event;

typedef struct feat_loop {
    struct event_base *base;
    struct event *stop;
    pthread_t thr;
    int started;
} feat_loop_t;

/* A non-blocking listening socket on host:port (IPv4, [IPv6] or a name;
 * port 0 lets the OS choose, *port says which).  -1 with errstr naming key
 * ("redis.listen: cannot listen on ..."). */
int feat_listen_tcp(const char *addr, const char *key, int *port, char *errstr, size_t errlen);

/* Creates l's base and stop event: 0, or -1 out of memory. */
int feat_loop_open(feat_loop_t *l);
/* Runs l's base on a new thread named name until feat_loop_stop: 0 or -1. */
int feat_loop_start(feat_loop_t *l, const char *name);
/* Asks the loop to return (from any thread); it finishes the callback it is in. */
void feat_loop_stop(feat_loop_t *l);
/* Joins the thread (if started); the base stays for the caller to free its events. */
void feat_loop_join(feat_loop_t *l);
/* Frees the stop event and the base (after the caller's events on it). */
void feat_loop_free(feat_loop_t *l);

#endif
