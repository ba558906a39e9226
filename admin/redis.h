/*
 * admin/redis.h — online features over the Redis protocol (redis.listen),
 * read only, for services that already hold a Redis client.
 *
 *   HMGET TABLE:ENTITY F1 F2 ...      the features' values (nil: no value)
 *   HGET TABLE:ENTITY F               one of them
 *   HGETALL TABLE:ENTITY              every feature that has a value
 *   GET TABLE:ENTITY:FEATURE          one value
 *   MGET KEY ...                      several, from any tables
 *   FEATURE@ts as a field (or key suffix) reads the value's event time, ms
 *
 * plus PING, ECHO, HELLO (RESP2 or RESP3), AUTH (featd's read or admin
 * tokens; the user name is not checked), QUIT, COMMAND, SELECT 0, CLIENT
 * ID/SETNAME/GETNAME/SETINFO.  Every other command gets Redis's error text:
 * "-READONLY ..." for a write, "-ERR unknown command ..." otherwise.
 *
 * Values: the online values GetOnlineFeatures reads (cache, store; in a
 * cluster each key from its owner), as bulk strings: a double as the
 * shortest decimal that reads back as the same double, an int64 in decimal,
 * a bool as "1" or "0", a string as it is.  NOT_FOUND and EXPIRED are nil
 * (a hash field that does not exist; HGETALL leaves the feature out).  A key
 * whose owner cannot be asked (UNAVAILABLE) or whose partition is being
 * restored (RESTORING) fails the whole command with "-TRYAGAIN ...", Redis
 * Cluster's "retry later".  Unknown tables and features are errors, not
 * nil, so a typo does not read as a missing value.
 *
 * Limits: redis.max_clients connections (one more is answered "-ERR max
 * number of clients reached" and closed, as Redis does), redis.max_request
 * bytes per command, serve.max_keys keys per MGET, redis.timeout seconds
 * idle.  A client that does not read its replies stops being read once
 * 4 MiB of them wait.  Plain text: featd warns when it is not loopback.
 *
 * Threads: redis.threads event loops accept on the one socket; a client is
 * served on the loop that accepted it, commands in order, pipelined or not.
 */
#ifndef FEAT_ADMIN_REDIS_H
#define FEAT_ADMIN_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "serve/serve.h"

typedef struct feat_redis feat_redis_t;

typedef struct feat_redis_conf {
    const char *listen;      /* host:port */
    int threads;             /* 1..64 */
    int64_t max_clients;
    int64_t max_request;     /* bytes of one command */
    int64_t timeout_s;       /* idle seconds before a client is closed; 0 = never */
} feat_redis_conf_t;

/* Listens and starts the threads (conf->listen NULL: neither, for
 * feat_redis_feed).  NULL with errstr ("redis.listen: ...") on failure. */
feat_redis_t *feat_redis_new(const feat_redis_conf_t *conf, feat_serve_t *serve, char *errstr, size_t errlen);
int feat_redis_port(const feat_redis_t *r);
/* For fuzzers and tests, no socket: answers data[0..len) as a new client's
 * bytes, in one thread, appending the replies to out.  1 when the client
 * would be closed (QUIT, a protocol error), 0 when not, -1 out of memory. */
int feat_redis_feed(feat_redis_t *r, const char *data, size_t len, feat_buf_t *out);
/* Stops the loops (a command in progress finishes first), closes every client, joins.  NULL is fine. */
void feat_redis_destroy(feat_redis_t *r);

#endif
