/* admin/redis.c — see redis.h. */
#include "admin/redis.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/loop.h"
#include "common/arena.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/resp.h"
#include "serve/auth.h"
#include "serve/lookup.h"

#define READ_CHUNK 16384
#define OUT_HIGH (4u << 20)      /* reply bytes waiting before a client stops being read */
#define KEEP_BUF (1u << 20)      /* a buffer larger than this is freed once empty */
#define CALL_TIMEOUT_MS 5000     /* a read forwarded to a peer (cluster) */

typedef struct conn conn_t;

typedef struct rloop {
    feat_loop_t ev;
    struct feat_redis *r;
    int fd;                      /* this loop's copy of the listening socket */
    struct event *accept;
    struct event *retry;         /* re-arms accept after running out of descriptors */
    conn_t *conns;               /* every client of this loop */
} rloop_t;

struct feat_redis {
    feat_serve_t *sv;
    feat_resp_limits_t lim;
    int64_t max_clients, timeout_s;
    int fd, port, n;
    rloop_t *loops;
    atomic_long clients;
    atomic_ullong next_id;
    feat_metric_t *m_commands, *m_errors, *m_clients, *m_rejected;
};

struct conn {
    struct feat_redis *r;
    rloop_t *loop;               /* NULL: a client fed by feat_redis_feed, no socket */
    conn_t *prev, *next;
    int fd;
    struct event *rd, *wr;
    feat_buf_t in, out;
    size_t ipos, opos;           /* parsed up to; written up to */
    int proto;                   /* 2 or 3 (HELLO) */
    int authed, closing, paused;
    uint64_t id;
    char *token;                 /* the AUTH token (forwards in a cluster carry it) */
    char *name;                  /* CLIENT SETNAME */
    char **argv;
    size_t *argl;
    feat_arena_t arena;          /* per command */
    feat_lookup_scratch_t ls;    /* kept warm between commands */
};

/* ---- replies ------------------------------------------------------------------------------ */

static void reply_error(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_error(conn_t *c, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    feat_resp_error(&c->out, "%s", msg);
    feat_metric_add(c->r->m_errors, 1);
}

static int arg_is(const char *a, size_t l, const char *s) { return strlen(s) == l && !strncasecmp(a, s, l); }

/* At most 64 bytes of a user's argument, for an error message. */
#define SHOW(p, l) (int)((l) > 64 ? 64 : (l)), (p)

/* One value as Redis hands out a hash field: a bulk string or nil. */
static void put_value(conn_t *c, const feat_value_t *v, int ts) {
    char s[32];
    int k;
    if (v->status != FEAT_ST_PRESENT) {
        feat_resp_null(&c->out, c->proto);
        return;
    }
    if (ts) {
        k = snprintf(s, sizeof(s), "%lld", (long long)v->ts);
        feat_resp_bulk(&c->out, s, (size_t)k);
        return;
    }
    switch (v->type) {
    case FEAT_FT_DOUBLE: feat_resp_bulk_double(&c->out, v->v.d); return;
    case FEAT_FT_INT64:
        k = snprintf(s, sizeof(s), "%lld", (long long)v->v.i);
        feat_resp_bulk(&c->out, s, (size_t)k);
        return;
    case FEAT_FT_BOOL: feat_resp_bulk(&c->out, v->v.b ? "1" : "0", 1); return;
    case FEAT_FT_STRING: feat_resp_bulk(&c->out, v->v.s, v->slen); return;
    default: feat_resp_null(&c->out, c->proto); return;
    }
}

/* A value its owner could not give (cluster): the whole command fails with
 * TRYAGAIN, as Redis Cluster asks a client to retry.  1 when it did. */
static int refuse_unavailable(conn_t *c, const feat_table_t *t, const char *const *keys, const size_t *klens,
                              size_t n, size_t nf, const feat_value_t *vals) {
    for (size_t k = 0; k < n; k++)
        for (size_t j = 0; j < nf; j++) {
            int st = vals[k * nf + j].status;
            if (st != FEAT_ST_UNAVAILABLE && st != FEAT_ST_RESTORING) continue;
            reply_error(c, "TRYAGAIN entity '%.*s' of table %s: %s; retry", SHOW(keys[k], klens[k]), t->conf->name,
                        st == FEAT_ST_RESTORING ? "its partition is being restored here"
                                                : "the instance that owns it cannot be reached");
            return 1;
        }
    return 0;
}

/* ---- keys --------------------------------------------------------------------------------- */

static const feat_table_t *find_table(conn_t *c, const char *name, size_t len) {
    char buf[FEAT_MAX_NAME + 1];
    const feat_table_t *t = NULL;
    if (len && len <= FEAT_MAX_NAME && !memchr(name, 0, len)) {
        memcpy(buf, name, len);
        buf[len] = 0;
        t = feat_store_table(c->r->sv->st, buf);
    }
    if (!t) reply_error(c, "ERR unknown table '%.*s'", SHOW(name, len));
    return t;
}

/* Feature name (with "@ts": its event time) → index in t; -1 after an error reply. */
static int find_feature(conn_t *c, const feat_table_t *t, const char *name, size_t len, int *ts) {
    *ts = len > 3 && !memcmp(name + len - 3, "@ts", 3);
    size_t fl = len - (*ts ? 3 : 0);
    const feat_table_conf_t *tc = t->conf;
    for (size_t i = 0; i < tc->nfeatures; i++)
        if (strlen(tc->features[i].name) == fl && !memcmp(tc->features[i].name, name, fl)) return (int)i;
    reply_error(c, "ERR unknown feature '%.*s' of table %s", SHOW(name, len), tc->name);
    return -1;
}

static int entity_ok(conn_t *c, const char *key, size_t klen, const char *e, size_t el) {
    feat_serve_t *sv = c->r->sv;
    if (feat_serve_key_ok(sv, e, el)) return 1;
    reply_error(c, "ERR key '%.*s': the entity key is empty, over ingest.max_key = %lld bytes or not UTF-8",
                SHOW(key, klen), (long long)sv->conf.max_key);
    return 0;
}

/* "TABLE:ENTITY" → table and entity; NULL after an error reply. */
static const feat_table_t *hash_key(conn_t *c, const char *k, size_t kl, const char **e, size_t *el) {
    const char *colon = memchr(k, ':', kl);
    if (!colon) {
        reply_error(c, "ERR key '%.*s' is not TABLE:ENTITY", SHOW(k, kl));
        return NULL;
    }
    const feat_table_t *t = find_table(c, k, (size_t)(colon - k));
    if (!t) return NULL;
    *e = colon + 1;
    *el = kl - (size_t)(colon - k) - 1;
    return entity_ok(c, k, kl, *e, *el) ? t : NULL;
}

typedef struct fkey {
    const feat_table_t *t;
    const char *e;
    size_t el;
    int f, ts;
} fkey_t;

/* "TABLE:ENTITY:FEATURE" (the entity may hold ':') → *out; 0 after an error reply. */
static int feature_key(conn_t *c, const char *k, size_t kl, fkey_t *out) {
    const char *first = memchr(k, ':', kl), *last = k + kl;
    while (last > k && last[-1] != ':') last--;
    if (!first || last - 1 == first) {
        reply_error(c, "ERR key '%.*s' is not TABLE:ENTITY:FEATURE", SHOW(k, kl));
        return 0;
    }
    if (!(out->t = find_table(c, k, (size_t)(first - k)))) return 0;
    out->e = first + 1;
    out->el = (size_t)(last - 1 - out->e);
    if (!entity_ok(c, k, kl, out->e, out->el)) return 0;
    out->f = find_feature(c, out->t, last, (size_t)(k + kl - last), &out->ts);
    return out->f >= 0;
}

/* ---- reads -------------------------------------------------------------------------------- */

/* Reads features fidx[0..nf) of n keys of t into vals (NULL after an error reply). */
static feat_value_t *read_values(conn_t *c, const feat_table_t *t, size_t n, const char *const *keys,
                                 const size_t *klens, const uint16_t *fidx, size_t nf, feat_lookup_scratch_t *ls) {
    feat_redis_t *r = c->r;
    feat_value_t *vals = feat_arena_alloc(&c->arena, n * nf * sizeof(*vals) + 1);
    if (!vals) {
        reply_error(c, "ERR out of memory");
        return NULL;
    }
    feat_rpc_call_t call = {.app = r->sv, .arena = &c->arena, .deadline_ms = feat_now_ms() + CALL_TIMEOUT_MS,
                            .token = c->token};
    feat_err_t rc = feat_serve_online(r->sv, &call, t, n, keys, klens, fidx, nf, vals, ls);
    if (rc) {
        reply_error(c, "ERR %s", call.msg[0] ? call.msg : feat_err_str(rc));
        return NULL;
    }
    return refuse_unavailable(c, t, keys, klens, n, nf, vals) ? NULL : vals;
}

static void cmd_hmget(conn_t *c, size_t argc, char **argv, size_t *argl) {
    const char *e;
    size_t el, na = argc - 2, nf = 0;
    const feat_table_t *t = hash_key(c, argv[1], argl[1], &e, &el);
    if (!t) return;
    /* each feature read once however often it is asked for (a peer refuses repeats) */
    uint16_t *fidx = feat_arena_alloc(&c->arena, t->conf->nfeatures * sizeof(uint16_t) + 1);
    int16_t *col = feat_arena_alloc(&c->arena, t->conf->nfeatures * sizeof(int16_t) + 1);
    uint16_t *at = feat_arena_alloc(&c->arena, na * sizeof(uint16_t) + 1);
    unsigned char *ts = feat_arena_alloc(&c->arena, na + 1);
    if (!fidx || !col || !at || !ts) {
        reply_error(c, "ERR out of memory");
        return;
    }
    for (size_t j = 0; j < t->conf->nfeatures; j++) col[j] = -1;
    for (size_t j = 0; j < na; j++) {
        int tsj, f = find_feature(c, t, argv[j + 2], argl[j + 2], &tsj);
        if (f < 0) return;
        if (col[f] < 0) {
            col[f] = (int16_t)nf;
            fidx[nf++] = (uint16_t)f;
        }
        at[j] = (uint16_t)col[f];
        ts[j] = (unsigned char)tsj;
    }
    feat_value_t *v = read_values(c, t, 1, &e, &el, fidx, nf, &c->ls);
    if (!v) return;
    if (argl[0] == 4) { /* HGET: one bulk, not an array */
        put_value(c, &v[at[0]], ts[0]);
        return;
    }
    feat_resp_array(&c->out, na);
    for (size_t j = 0; j < na; j++) put_value(c, &v[at[j]], ts[j]);
}

static void cmd_hgetall(conn_t *c, size_t argc, char **argv, size_t *argl) {
    (void)argc;
    const char *e;
    size_t el;
    const feat_table_t *t = hash_key(c, argv[1], argl[1], &e, &el);
    if (!t) return;
    size_t nf = t->conf->nfeatures, present = 0;
    uint16_t *fidx = feat_arena_alloc(&c->arena, nf * sizeof(uint16_t) + 1);
    if (!fidx) {
        reply_error(c, "ERR out of memory");
        return;
    }
    for (size_t j = 0; j < nf; j++) fidx[j] = (uint16_t)j;
    feat_value_t *v = read_values(c, t, 1, &e, &el, fidx, nf, &c->ls);
    if (!v) return;
    for (size_t j = 0; j < nf; j++) present += v[j].status == FEAT_ST_PRESENT;
    feat_resp_map(&c->out, present, c->proto);
    for (size_t j = 0; j < nf; j++) {
        if (v[j].status != FEAT_ST_PRESENT) continue;
        const char *name = t->conf->features[j].name;
        feat_resp_bulk(&c->out, name, strlen(name));
        put_value(c, &v[j], 0);
    }
}

/* GET and MGET: keys grouped by table, one read of each table's keys. */
static void cmd_mget(conn_t *c, size_t argc, char **argv, size_t *argl) {
    feat_redis_t *r = c->r;
    size_t n = argc - 1;
    if ((int64_t)n > r->sv->conf.max_keys) {
        reply_error(c, "ERR %zu keys; serve.max_keys = %lld", n, (long long)r->sv->conf.max_keys);
        return;
    }
    fkey_t *ks = feat_arena_alloc(&c->arena, n * sizeof(*ks) + 1);
    const feat_value_t **res = feat_arena_alloc(&c->arena, n * sizeof(*res) + 1);
    const char **keys = feat_arena_alloc(&c->arena, n * sizeof(*keys) + 1);
    size_t *klens = feat_arena_alloc(&c->arena, n * sizeof(*klens) + 1);
    size_t *at = feat_arena_alloc(&c->arena, n * sizeof(*at) + 1);
    unsigned char *done = feat_arena_calloc(&c->arena, n + 1);
    if (!ks || !res || !keys || !klens || !at || !done) {
        reply_error(c, "ERR out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!feature_key(c, argv[i + 1], argl[i + 1], &ks[i])) return;
    feat_lookup_scratch_t *extra = NULL; /* a second table's strings must outlive the first's */
    size_t nextra = 0;
    int ok = 1;
    static const int16_t unset = -1;
    for (size_t i = 0; ok && i < n; i++) {
        if (done[i]) continue;
        const feat_table_t *t = ks[i].t;
        int16_t col[FEAT_MAX_FEATURES];
        for (size_t j = 0; j < t->conf->nfeatures; j++) col[j] = unset;
        uint16_t fidx[FEAT_MAX_FEATURES];
        size_t nf = 0, m = 0;
        for (size_t q = i; q < n; q++) {
            if (ks[q].t != t) continue;
            if (col[ks[q].f] == unset) {
                col[ks[q].f] = (int16_t)nf;
                fidx[nf++] = (uint16_t)ks[q].f;
            }
            keys[m] = ks[q].e;
            klens[m] = ks[q].el;
            at[m++] = q;
            done[q] = 1;
        }
        feat_lookup_scratch_t *ls = &c->ls;
        if (i) { /* not the first table */
            if (!extra && !(extra = calloc(n, sizeof(*extra)))) {
                reply_error(c, "ERR out of memory");
                ok = 0;
                break;
            }
            ls = &extra[nextra++];
        }
        feat_value_t *v = read_values(c, t, m, keys, klens, fidx, nf, ls);
        if (!v) {
            ok = 0;
            break;
        }
        for (size_t q = 0; q < m; q++) res[at[q]] = &v[q * nf + (size_t)col[ks[at[q]].f]];
    }
    if (ok) {
        if (argl[0] == 3) { /* GET */
            put_value(c, res[0], ks[0].ts);
        } else {
            feat_resp_array(&c->out, n);
            for (size_t i = 0; i < n; i++) put_value(c, res[i], ks[i].ts);
        }
    }
    for (size_t q = 0; q < nextra; q++) feat_lookup_scratch_free(&extra[q]);
    free(extra);
}

/* ---- connection commands ------------------------------------------------------------------ */

static int is_int(const char *s, size_t l) {
    size_t k = l && s[0] == '-';
    if (k == l || l > 19) return 0;
    for (; k < l; k++)
        if (s[k] < '0' || s[k] > '9') return 0;
    return 1;
}

static void cmd_ping(conn_t *c, size_t argc, char **argv, size_t *argl) {
    if (argc > 2) reply_error(c, "ERR wrong number of arguments for 'ping' command");
    else if (argc == 2) feat_resp_bulk(&c->out, argv[1], argl[1]);
    else feat_resp_simple(&c->out, "PONG");
}

static void cmd_echo(conn_t *c, size_t argc, char **argv, size_t *argl) {
    (void)argc;
    feat_resp_bulk(&c->out, argv[1], argl[1]);
}

static void cmd_quit(conn_t *c, size_t argc, char **argv, size_t *argl) {
    (void)argc, (void)argv, (void)argl;
    feat_resp_simple(&c->out, "OK");
    c->closing = 1;
}

static void cmd_select(conn_t *c, size_t argc, char **argv, size_t *argl) {
    (void)argc;
    if (!is_int(argv[1], argl[1])) reply_error(c, "ERR value is not an integer or out of range");
    else if (argl[1] == 1 && argv[1][0] == '0') feat_resp_simple(&c->out, "OK");
    else reply_error(c, "ERR DB index is out of range");
}

/* Checks token; 1 and remembered, or 0 after WRONGPASS.  Without [auth]
 * tokens every token is right, as for Redis's default user without a
 * password. */
static int authenticate(conn_t *c, const char *tok, size_t len) {
    feat_serve_t *sv = c->r->sv;
    if (!sv->auth) return 1;
    if (feat_auth_check(sv->auth, tok, len) == FEAT_AUTH_NONE) {
        reply_error(c, "WRONGPASS invalid username-password pair or user is disabled.");
        return 0;
    }
    char *t = strndup(tok, len);
    if (!t) {
        reply_error(c, "ERR out of memory");
        return 0;
    }
    if (c->token) memset(c->token, 0, strlen(c->token));
    free(c->token);
    c->token = t;
    c->authed = 1;
    return 1;
}

static void cmd_auth(conn_t *c, size_t argc, char **argv, size_t *argl) {
    if (argc > 3) {
        reply_error(c, "ERR syntax error");
        return;
    }
    if (argc == 2 && !c->r->sv->auth) { /* Redis's text for a password-only AUTH without a password */
        reply_error(c, "ERR AUTH <password> called without any password configured for the default user. "
                       "Are you sure your configuration is correct?");
        return;
    }
    if (authenticate(c, argv[argc - 1], argl[argc - 1])) feat_resp_simple(&c->out, "OK");
}

static int set_name(conn_t *c, const char *s, size_t l) {
    if (!l) { /* an empty name clears it, as in Redis */
        free(c->name);
        c->name = NULL;
        return 1;
    }
    for (size_t i = 0; i < l; i++)
        if (s[i] <= ' ' || s[i] > '~') {
            reply_error(c, "ERR Client names cannot contain spaces, newlines or special characters.");
            return 0;
        }
    char *nm = strndup(s, l);
    if (!nm) {
        reply_error(c, "ERR out of memory");
        return 0;
    }
    free(c->name);
    c->name = nm;
    return 1;
}

static void cmd_hello(conn_t *c, size_t argc, char **argv, size_t *argl) {
    feat_serve_t *sv = c->r->sv;
    int proto = c->proto;
    size_t i = 1;
    if (argc > 1) {
        if (!is_int(argv[1], argl[1])) {
            reply_error(c, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (!(argl[1] == 1 && (argv[1][0] == '2' || argv[1][0] == '3'))) {
            reply_error(c, "NOPROTO unsupported protocol version");
            return;
        }
        proto = argv[1][0] - '0';
        i = 2;
    }
    const char *name = NULL, *tok = NULL;
    size_t nlen = 0, tlen = 0;
    for (; i < argc; i++) { /* every option checked before any takes effect */
        if (arg_is(argv[i], argl[i], "AUTH") && i + 2 < argc) {
            tok = argv[i + 2];
            tlen = argl[i + 2];
            i += 2;
        } else if (arg_is(argv[i], argl[i], "SETNAME") && i + 1 < argc) {
            name = argv[i + 1];
            nlen = argl[i + 1];
            i++;
        } else {
            reply_error(c, "ERR Syntax error in HELLO option '%.*s'", SHOW(argv[i], argl[i]));
            return;
        }
    }
    if (tok && !authenticate(c, tok, tlen)) return;
    if (sv->auth && !c->authed) {
        reply_error(c, "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
                       "AUTH <user> <pass> option can be used to authenticate the client and select the "
                       "RESP protocol version at the same time");
        return;
    }
    if (name && !set_name(c, name, nlen)) return;
    c->proto = proto;
    feat_resp_map(&c->out, 7, c->proto);
    feat_resp_bulk(&c->out, "server", 6);
    feat_resp_bulk(&c->out, "featd", 5);
    feat_resp_bulk(&c->out, "version", 7);
    feat_resp_bulk(&c->out, FEATD_VERSION, strlen(FEATD_VERSION));
    feat_resp_bulk(&c->out, "proto", 5);
    feat_resp_int(&c->out, c->proto);
    feat_resp_bulk(&c->out, "id", 2);
    feat_resp_int(&c->out, (int64_t)c->id);
    feat_resp_bulk(&c->out, "mode", 4);
    feat_resp_bulk(&c->out, "standalone", 10);
    feat_resp_bulk(&c->out, "role", 4);
    feat_resp_bulk(&c->out, "master", 6);
    feat_resp_bulk(&c->out, "modules", 7);
    feat_resp_array(&c->out, 0);
}

/* Redis 7's texts for a subcommand: unknown, or known with the wrong arity. */
static void subcommand_error(conn_t *c, const char *cmd, const char *const *known, char **argv, size_t *argl) {
    for (size_t i = 0; known[i]; i++)
        if (arg_is(argv[1], argl[1], known[i])) {
            char low[32];
            size_t n = strlen(known[i]);
            for (size_t k = 0; k < n && k < sizeof(low) - 1; k++) low[k] = (char)(known[i][k] | 0x20);
            low[n < sizeof(low) - 1 ? n : sizeof(low) - 1] = 0;
            reply_error(c, "ERR wrong number of arguments for '%s|%s' command", cmd, low);
            return;
        }
    char up[16];
    size_t k = 0;
    for (; cmd[k] && k < sizeof(up) - 1; k++) up[k] = (char)(cmd[k] & ~0x20);
    up[k] = 0;
    reply_error(c, "ERR unknown subcommand '%.*s'. Try %s HELP.", SHOW(argv[1], argl[1]), up);
}

static void cmd_client(conn_t *c, size_t argc, char **argv, size_t *argl) {
    if (arg_is(argv[1], argl[1], "ID") && argc == 2) {
        feat_resp_int(&c->out, (int64_t)c->id);
    } else if (arg_is(argv[1], argl[1], "SETNAME") && argc == 3) {
        if (set_name(c, argv[2], argl[2])) feat_resp_simple(&c->out, "OK");
    } else if (arg_is(argv[1], argl[1], "GETNAME") && argc == 2) {
        if (c->name) feat_resp_bulk(&c->out, c->name, strlen(c->name));
        else feat_resp_null(&c->out, c->proto);
    } else if (arg_is(argv[1], argl[1], "SETINFO") && argc == 4) {
        feat_resp_simple(&c->out, "OK"); /* library name and version: nothing to keep */
    } else {
        static const char *const known[] = {"ID", "SETNAME", "GETNAME", "SETINFO", NULL};
        subcommand_error(c, "client", known, argv, argl);
    }
}

static void cmd_command(conn_t *c, size_t argc, char **argv, size_t *argl);

typedef void cmd_fn(conn_t *c, size_t argc, char **argv, size_t *argl);

/* The commands, as COMMAND describes them (arity: exact when positive, a
 * minimum when negative, the command name included). */
static const struct cmd {
    const char *name;
    int arity;
    cmd_fn *fn;
    int no_auth;                 /* allowed before AUTH */
    const char *flags, *acl;     /* space-separated */
    int first, last, step;
} CMDS[] = {
    {"hmget", -3, cmd_hmget, 0, "readonly fast", "@read @hash @fast", 1, 1, 1},
    {"hget", 3, cmd_hmget, 0, "readonly fast", "@read @hash @fast", 1, 1, 1},
    {"hgetall", 2, cmd_hgetall, 0, "readonly", "@read @hash @slow", 1, 1, 1},
    {"get", 2, cmd_mget, 0, "readonly fast", "@read @string @fast", 1, 1, 1},
    {"mget", -2, cmd_mget, 0, "readonly fast", "@read @string @fast", 1, -1, 1},
    {"ping", -1, cmd_ping, 0, "fast", "@fast @connection", 0, 0, 0},
    {"echo", 2, cmd_echo, 0, "fast", "@fast @connection", 0, 0, 0},
    {"hello", -1, cmd_hello, 1, "noscript loading stale fast no_auth allow_busy", "@fast @connection", 0, 0, 0},
    {"auth", -2, cmd_auth, 1, "noscript loading stale fast no_auth allow_busy", "@fast @connection", 0, 0, 0},
    {"quit", -1, cmd_quit, 1, "noscript loading stale fast no_auth allow_busy", "@fast @connection", 0, 0, 0},
    {"select", 2, cmd_select, 0, "loading stale fast", "@keyspace @fast", 0, 0, 0},
    {"client", -2, cmd_client, 0, "noscript loading stale", "@slow @connection", 0, 0, 0},
    {"command", -1, cmd_command, 0, "loading stale", "@slow @connection", 0, 0, 0},
};
#define NCMDS (sizeof(CMDS) / sizeof(CMDS[0]))

/* Redis's own write commands: READONLY, as a read-only replica answers. */
static const char *const WRITES[] = {"set", "setex", "psetex", "setnx", "mset", "msetnx", "getset", "getdel",
                                     "append", "incr", "incrby", "incrbyfloat", "decr", "decrby", "del", "unlink",
                                     "expire", "pexpire", "expireat", "pexpireat", "persist", "rename", "hset",
                                     "hsetnx", "hmset", "hdel", "hincrby", "hincrbyfloat", "flushdb", "flushall"};

static const struct cmd *find_cmd(const char *name, size_t len) {
    for (size_t i = 0; i < NCMDS; i++)
        if (arg_is(name, len, CMDS[i].name)) return &CMDS[i];
    return NULL;
}

static void put_words(conn_t *c, const char *s, const char *prefix) {
    size_t n = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ') p++;
        if (*p) n++;
        while (*p && *p != ' ') p++;
    }
    feat_resp_set(&c->out, n, c->proto);
    for (const char *p = s; *p;) {
        while (*p == ' ') p++;
        const char *w = p;
        while (*p && *p != ' ') p++;
        if (p > w) {
            feat_buf_printf(&c->out, "+%s%.*s\r\n", prefix, (int)(p - w), w);
        }
    }
}

static void put_info(conn_t *c, const struct cmd *m) {
    feat_resp_array(&c->out, 10);
    feat_resp_bulk(&c->out, m->name, strlen(m->name));
    feat_resp_int(&c->out, m->arity);
    put_words(c, m->flags, "");
    feat_resp_int(&c->out, m->first);
    feat_resp_int(&c->out, m->last);
    feat_resp_int(&c->out, m->step);
    put_words(c, m->acl, "");
    feat_resp_array(&c->out, 0); /* tips */
    feat_resp_array(&c->out, 0); /* key specs */
    feat_resp_array(&c->out, 0); /* subcommands */
}

static void cmd_command(conn_t *c, size_t argc, char **argv, size_t *argl) {
    if (argc == 1) {
        feat_resp_array(&c->out, NCMDS);
        for (size_t i = 0; i < NCMDS; i++) put_info(c, &CMDS[i]);
    } else if (arg_is(argv[1], argl[1], "COUNT") && argc == 2) {
        feat_resp_int(&c->out, (int64_t)NCMDS);
    } else if (arg_is(argv[1], argl[1], "LIST") && argc == 2) {
        feat_resp_array(&c->out, NCMDS);
        for (size_t i = 0; i < NCMDS; i++) feat_resp_bulk(&c->out, CMDS[i].name, strlen(CMDS[i].name));
    } else if (arg_is(argv[1], argl[1], "INFO")) {
        feat_resp_array(&c->out, argc - 2);
        for (size_t i = 2; i < argc; i++) {
            const struct cmd *m = find_cmd(argv[i], argl[i]);
            if (m) put_info(c, m);
            else feat_resp_null(&c->out, c->proto);
        }
    } else if (arg_is(argv[1], argl[1], "DOCS")) {
        feat_resp_map(&c->out, 0, c->proto); /* no documentation to offer: clients carry their own */
    } else {
        static const char *const known[] = {"COUNT", "LIST", NULL};
        subcommand_error(c, "command", known, argv, argl);
    }
}

static void dispatch(conn_t *c, size_t argc, char **argv, size_t *argl) {
    feat_redis_t *r = c->r;
    feat_metric_add(r->m_commands, 1);
    const struct cmd *m = find_cmd(argv[0], argl[0]);
    if (!m) {
        for (size_t i = 0; i < sizeof(WRITES) / sizeof(WRITES[0]); i++)
            if (arg_is(argv[0], argl[0], WRITES[i])) {
                reply_error(c, "READONLY featd serves reads only: features are written through Kafka or "
                               "FeatureService.Push");
                return;
            }
        /* Redis's own text: "unknown command 'x', with args beginning with: 'a' 'b' " */
        char args[256];
        size_t n = 0;
        args[0] = 0;
        for (size_t i = 1; i < argc && n < sizeof(args) - 1; i++) {
            int k = snprintf(args + n, sizeof(args) - n, "'%.*s' ", SHOW(argv[i], argl[i]));
            if (k < 0) break;
            n += (size_t)k;
        }
        if (n >= sizeof(args)) n = sizeof(args) - 1;
        args[n] = 0;
        reply_error(c, "ERR unknown command '%.*s', with args beginning with: %s", SHOW(argv[0], argl[0]), args);
        return;
    }
    if ((m->arity > 0 && argc != (size_t)m->arity) || (m->arity < 0 && argc < (size_t)-m->arity)) {
        reply_error(c, "ERR wrong number of arguments for '%s' command", m->name);
        return;
    }
    if (r->sv->auth && !c->authed && !m->no_auth) {
        reply_error(c, "NOAUTH Authentication required.");
        return;
    }
    feat_arena_reset(&c->arena);
    m->fn(c, argc, argv, argl);
    if (c->ls.strings.cap > KEEP_BUF || c->ls.caprows > 1024) feat_lookup_scratch_free(&c->ls); /* after a big MGET */
}

/* ---- connections -------------------------------------------------------------------------- */

static void conn_free(conn_t *c) {
    rloop_t *l = c->loop;
    feat_redis_t *r = c->r;
    if (l) {
        if (c->prev) c->prev->next = c->next;
        else l->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        if (c->rd) event_free(c->rd);
        if (c->wr) event_free(c->wr);
        close(c->fd);
        atomic_fetch_sub(&r->clients, 1);
        feat_metric_gauge_add(r->m_clients, -1);
    }
    feat_buf_free(&c->in);
    feat_buf_free(&c->out);
    feat_arena_free(&c->arena);
    feat_lookup_scratch_free(&c->ls);
    if (c->token) memset(c->token, 0, strlen(c->token));
    free(c->token);
    free(c->name);
    free(c->argv);
    free(c->argl);
    free(c);
}

/* A client of r: NULL out of memory. */
static conn_t *conn_new(feat_redis_t *r) {
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->argv = malloc(r->lim.max_args * sizeof(*c->argv));
    c->argl = malloc(r->lim.max_args * sizeof(*c->argl));
    if (!c->argv || !c->argl) {
        free(c->argv);
        free(c->argl);
        free(c);
        return NULL;
    }
    c->r = r;
    c->fd = -1;
    c->proto = 2;
    c->id = atomic_fetch_add(&r->next_id, 1) + 1;
    feat_arena_init(&c->arena, 16384);
    return c;
}

/* Answers the whole commands in c->in from c->ipos on, into c->out, until
 * OUT_HIGH bytes of replies wait or the client is to be closed. */
static void answer(conn_t *c) {
    char err[160];
    while (!c->closing && c->ipos < c->in.len && c->out.len - c->opos < OUT_HIGH) {
        size_t argc = 0, used = 0;
        feat_resp_rc_t rc = feat_resp_parse(c->in.data + c->ipos, c->in.len - c->ipos, &c->r->lim, &argc, c->argv,
                                            c->argl, &used, err, sizeof(err));
        if (rc == FEAT_RESP_MORE) break;
        if (rc == FEAT_RESP_ERROR) {
            reply_error(c, "ERR %s", err);
            c->closing = 1;
            break;
        }
        if (rc == FEAT_RESP_CMD) dispatch(c, argc, c->argv, c->argl);
        c->ipos += used;
    }
}

static void process(conn_t *c);

/* Writes what waits; 0, or -1 when c was freed. */
static int flush(conn_t *c) {
    while (c->opos < c->out.len) {
        ssize_t w = write(c->fd, c->out.data + c->opos, c->out.len - c->opos);
        if (w > 0) {
            c->opos += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        conn_free(c);
        return -1;
    }
    if (c->opos < c->out.len) {
        struct timeval tv = {c->r->timeout_s, 0};
        event_add(c->wr, c->r->timeout_s ? &tv : NULL); /* a client that reads nothing for that long is closed */
        if (c->out.len - c->opos >= OUT_HIGH && !c->paused) { /* it does not read: stop reading it */
            event_del(c->rd);
            c->paused = 1;
        }
        return 0;
    }
    event_del(c->wr);
    if (c->out.cap > KEEP_BUF) feat_buf_free(&c->out);
    c->out.len = c->opos = 0;
    if (c->closing) {
        conn_free(c);
        return -1;
    }
    return 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    conn_t *c = arg;
    if (what & EV_TIMEOUT) {
        conn_free(c);
        return;
    }
    if (flush(c) || c->out.len) return;
    if (c->paused && !c->closing) {
        c->paused = 0;
        struct timeval tv = {c->r->timeout_s, 0};
        event_add(c->rd, c->r->timeout_s ? &tv : NULL);
    }
    if (c->ipos < c->in.len) process(c); /* commands read while replies waited */
}

/* Answers every whole command in c->in, writing as it goes; stops early
 * while OUT_HIGH bytes of replies wait (on_write comes back for the rest). */
static void process(conn_t *c) {
    for (;;) {
        answer(c);
        if (c->closing && !c->paused) { /* QUIT or a protocol error: nothing more is read, the replies go out */
            event_del(c->rd);
            c->paused = 1;
        }
        if (c->out.oom) { /* a reply could not be built: nothing sensible to send */
            conn_free(c);
            return;
        }
        int full = c->out.len - c->opos >= OUT_HIGH;
        if (c->ipos == c->in.len) {
            c->ipos = c->in.len = 0;
            if (c->in.cap > KEEP_BUF) feat_buf_free(&c->in);
        }
        if (flush(c)) return;
        if (!full || c->out.len) return; /* done, or on_write resumes once the replies are out */
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    conn_t *c = arg;
    if (what & EV_TIMEOUT) {
        conn_free(c);
        return;
    }
    if (c->ipos && c->in.cap - c->in.len < READ_CHUNK) { /* a partial command: to the front */
        memmove(c->in.data, c->in.data + c->ipos, c->in.len - c->ipos);
        c->in.len -= c->ipos;
        c->ipos = 0;
    }
    if (c->in.cap - c->in.len < READ_CHUNK && feat_buf_grow(&c->in, READ_CHUNK)) {
        conn_free(c);
        return;
    }
    ssize_t n = read(fd, c->in.data + c->in.len, c->in.cap - c->in.len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        conn_free(c);
        return;
    }
    c->in.len += (size_t)n;
    process(c);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    rloop_t *l = arg;
    event_add(l->accept, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg) {
    (void)what;
    rloop_t *l = arg;
    feat_redis_t *r = l->r;
    for (int k = 0; k < 16; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: the socket stays readable, so wait instead of spinning */
                static const struct timeval backoff = {0, 100000};
                event_del(l->accept);
                evtimer_add(l->retry, &backoff);
                feat_log(FEAT_LOG_WARN, "redis", "cannot accept a client: %s; trying again in 100 ms", strerror(errno));
            }
            return;
        }
        if (atomic_fetch_add(&r->clients, 1) >= r->max_clients) {
            static const char full[] = "-ERR max number of clients reached\r\n";
            atomic_fetch_sub(&r->clients, 1);
            feat_metric_add(r->m_rejected, 1);
            if (write(fd, full, sizeof(full) - 1) < 0) { /* nothing more to tell it */
            }
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn_t *c = conn_new(r);
        if (c) {
            c->loop = l;
            c->fd = fd;
        }
        if (!c || !(c->rd = event_new(l->ev.base, fd, EV_READ | EV_PERSIST, on_read, c)) ||
            !(c->wr = event_new(l->ev.base, fd, EV_WRITE | EV_PERSIST, on_write, c))) {
            if (c) {
                if (c->rd) event_free(c->rd);
                c->loop = NULL;
                conn_free(c);
            }
            close(fd);
            atomic_fetch_sub(&r->clients, 1);
            continue;
        }
        c->next = l->conns;
        if (l->conns) l->conns->prev = c;
        l->conns = c;
        feat_metric_gauge_add(r->m_clients, 1);
        struct timeval tv = {r->timeout_s, 0};
        event_add(c->rd, r->timeout_s ? &tv : NULL);
    }
}

/* ---- the listener ------------------------------------------------------------------------- */

feat_redis_t *feat_redis_new(const feat_redis_conf_t *conf, feat_serve_t *serve, char *errstr, size_t errlen) {
    feat_redis_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->loops = calloc(conf->threads > 0 ? (size_t)conf->threads : 1, sizeof(rloop_t)))) {
        free(r);
        snprintf(errstr, errlen, "redis: out of memory");
        return NULL;
    }
    r->sv = serve;
    r->max_clients = conf->max_clients;
    r->timeout_s = conf->timeout_s;
    size_t mk = (size_t)serve->conf.max_keys;
    r->lim.max_args = (mk > FEAT_MAX_FEATURES ? mk : FEAT_MAX_FEATURES) + 2; /* MGET's keys, HMGET's fields */
    r->lim.max_bytes = (size_t)conf->max_request;
    r->m_commands =
        feat_counter(serve->metrics, "featd_redis_commands_total", "Redis-protocol commands answered.", NULL);
    r->m_errors = feat_counter(serve->metrics, "featd_redis_errors_total",
                               "Redis-protocol commands answered with an error.", NULL);
    r->m_clients = feat_gauge(serve->metrics, "featd_redis_clients", "Redis-protocol clients connected.", NULL);
    r->m_rejected = feat_counter(serve->metrics, "featd_redis_rejected_clients_total",
                                 "Redis-protocol connections refused at redis.max_clients.", NULL);
    r->fd = -1;
    if (!conf->listen) return r; /* feat_redis_feed only */
    r->fd = feat_listen_tcp(conf->listen, "redis.listen", &r->port, errstr, errlen);
    if (r->fd < 0) {
        free(r->loops);
        free(r);
        return NULL;
    }
    for (int i = 0; i < conf->threads; i++) {
        rloop_t *l = &r->loops[i];
        l->r = r;
        l->fd = -1;
        r->n = i + 1;
        if (feat_loop_open(&l->ev) || (l->fd = dup(r->fd)) < 0 ||
            !(l->accept = event_new(l->ev.base, l->fd, EV_READ | EV_PERSIST, on_accept, l)) ||
            !(l->retry = evtimer_new(l->ev.base, on_retry, l)) ||
            event_add(l->accept, NULL) || feat_loop_start(&l->ev, "redis")) {
            snprintf(errstr, errlen, "redis: cannot start its event loops");
            feat_redis_destroy(r);
            return NULL;
        }
    }
    feat_log(FEAT_LOG_INFO, "redis", "Redis protocol on %s (port %d, %d threads, at most %lld clients)", conf->listen,
             r->port, conf->threads, (long long)conf->max_clients);
    return r;
}

int feat_redis_port(const feat_redis_t *r) { return r ? r->port : 0; }

int feat_redis_feed(feat_redis_t *r, const char *data, size_t len, feat_buf_t *out) {
    conn_t *c = conn_new(r);
    if (!c) return -1;
    feat_buf_append(&c->in, data, len);
    int rc = c->in.oom ? -1 : 0;
    while (!rc && !c->closing && c->ipos < c->in.len) {
        size_t before = c->ipos;
        answer(c);
        feat_buf_append(out, c->out.data, c->out.len);
        c->out.len = 0;
        if (c->ipos == before) break; /* an incomplete command: more would come */
    }
    if (c->out.oom || out->oom) rc = -1;
    else if (!rc) rc = c->closing;
    conn_free(c);
    return rc;
}

void feat_redis_destroy(feat_redis_t *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) feat_loop_stop(&r->loops[i].ev);
    for (int i = 0; i < r->n; i++) {
        rloop_t *l = &r->loops[i];
        feat_loop_join(&l->ev);
        while (l->conns) conn_free(l->conns);
        if (l->accept) event_free(l->accept);
        if (l->retry) event_free(l->retry);
        if (l->fd >= 0) close(l->fd);
        feat_loop_free(&l->ev);
    }
    if (r->fd >= 0) close(r->fd);
    free(r->loops);
    free(r);
}
