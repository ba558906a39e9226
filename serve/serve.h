/*
 * serve/serve.h — what featd serves from: the context every RPC handler
 * (service.c, models_rpc.c) and the admin HTTP server (admin/http.h) read,
 * the method table the gRPC server registers, and the authorize hook that
 * checks bearer tokens.
 *
 * The daemon (daemon/featd.c) fills one feat_serve_t once it has built the
 * parts the context borrows, then hands it to the gRPC server as its app
 * pointer (every call's call->app) and to the admin HTTP server.  After that
 * only shutting_down changes; handlers read the rest from any thread without
 * a lock.  Every part outlives the servers that read it.
 */
#ifndef FEAT_SERVE_SERVE_H
#define FEAT_SERVE_SERVE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "common/metrics.h"
#include "ingest/ingest.h"
#include "rpc/rpc.h"
#include "store/store.h"

struct feat_cache;
struct feat_drift;
struct feat_models;
struct feat_predlog;
struct feat_auth;
struct feat_cluster;
struct feat_forward;
struct feat_models_cluster;
struct feat_producer;
struct feat_decode_conf;

/* What handlers need from the config. */
typedef struct feat_serve_conf {
    const feat_table_conf_t *tables; /* [ntables] (ListTables, Status); borrowed */
    size_t ntables;
    const feat_model_conf_t *models; /* [nmodels] (model names in requests); borrowed */
    size_t nmodels;
    int64_t max_keys;           /* serve.max_keys: entity keys (or rows) per lookup or Predict */
    int64_t max_history_rows;   /* serve.max_history_rows: rows per GetHistoricalFeatures */
    int64_t max_key;            /* ingest.max_key: bytes of one entity key */
} feat_serve_conf_t;

typedef struct feat_serve {
    feat_serve_conf_t conf;
    feat_store_t *st;
    feat_ingest_t *ingest;       /* NULL: not consuming (status reads zeros; never ready) */
    struct feat_cache *cache;    /* NULL: no row cache (serve.cache = 0) */
    struct feat_drift *drift;    /* NULL: drift.enabled = false */
    struct feat_models *models;  /* the registry Predict and the model methods use */
    struct feat_predlog *predlog; /* NULL: served predictions are not logged */
    struct feat_auth *auth;      /* NULL: no [auth] token files, every method open */
    struct feat_cluster *cluster; /* ingest/cluster.h: the partition map; NULL or single mode: every key is local */
    struct feat_forward *forward; /* forward.h: calls to peers (partitioned mode); NULL: none */
    struct feat_producer *push;  /* Push's producer (ingest/producer.h); NULL: featd runs without Kafka */
    const struct feat_decode_conf *decode; /* Push checks events as ingest would (ingest/decode.h) */
    feat_metrics_t *metrics;     /* never NULL */
    int64_t started_ms;          /* when the daemon started (uptime) */
    atomic_int shutting_down;    /* set once the daemon starts to stop: no longer ready */
    int peer;                    /* the copy behind cluster.listen: reads only this instance's partitions,
                                  * never forwards (so its threads never wait on another instance) */
} feat_serve_t;

/* The gRPC methods featd serves (FeatureService, AdminService), static. */
const feat_method_t *feat_serve_methods(size_t *n);

/* Whether featd is ready to serve (1) or not (0): store open, ingest
 * running with partitions assigned, not shutting down. */
int feat_serve_ready(feat_serve_t *sv);

/* The gRPC server's authorize hook (feat_server_conf_t.authorize) when
 * sv->auth is set; serve is the feat_serve_t.  A read token may call
 * FEAT_RPC_READ methods, an admin token every method: FEAT_OK,
 * FEAT_ERR_UNAUTHENTICATED (no or unknown token) or FEAT_ERR_PERMISSION (a
 * read token calling an admin method), with msg for the client.  Runs on the
 * worker thread for every call: constant-time comparison, no allocation. */
feat_err_t feat_serve_authorize(void *serve, const feat_method_t *m, const char *token, char *msg, size_t msglen);

/* The prediction log's shadow function (serve/predlog.h; serve is the
 * feat_serve_t): scores keys of conf.models[model] with its challenger,
 * reading their features as Predict does as of ts.  A key this instance
 * does not serve locally in a cluster is not scored (NaN); a challenger
 * over several tables is not shadowed (FEAT_ERR_UNIMPLEMENTED). */
feat_err_t feat_serve_shadow(void *serve, uint32_t model, int64_t ts, size_t n, const char *const *keys,
                             const size_t *klens, double *scores, uint64_t *version);

/* For front ends other than gRPC (admin/redis.c): the online values of
 * features fidx[0..nf) of n entity keys of table t, as GetOnlineFeatures
 * reads them (cache, then store; in a cluster each key from its owner, with
 * call->token and call->deadline_ms), into vals[k * nf + j].  call is the
 * caller's (app = sv, an arena); the keys must pass GetOnlineFeatures' checks
 * (non-empty, at most serve.max_keys of them, each valid UTF-8 without NUL
 * within ingest.max_key: feat_serve_key_ok), klens[k] bytes each, NUL-terminated
 * or not.  Strings point into ls or the arena.  FEAT_OK, FEAT_ERR_NOMEM, or the read's error with call->msg set. */
struct feat_lookup_scratch;
feat_err_t feat_serve_online(feat_serve_t *sv, feat_rpc_call_t *call, const feat_table_t *t, size_t n,
                             const char *const *keys, const size_t *klens, const uint16_t *fidx, size_t nf,
                             feat_value_t *vals, struct feat_lookup_scratch *ls);
/* Whether key (klen bytes) is one an entity can have: 1 or 0. */
int feat_serve_key_ok(const feat_serve_t *sv, const char *key, size_t klen);

/* conf.models' entry named name, or NULL. */
const feat_model_conf_t *feat_serve_model(const feat_serve_t *sv, const char *name);

/* cluster_train.c.  The hooks for feat_models_set_cluster (train/models.h)
 * of sv's cluster: who trains, the training set gathered from every owner
 * (AdminService.GetTrainingRows, with an admin token of sv->auth), the
 * registry's records for cluster.models_topic and the versions served, for
 * the membership record.  All zero in single mode. */
void feat_serve_models_cluster(feat_serve_t *sv, struct feat_models_cluster *out);
/* A feat_cluster_models_fn (ingest/cluster.h) for the feat_models_t models:
 * applies the record (feat_models_import) and logs one it cannot. */
void feat_serve_models_record(void *models, const void *key, size_t klen, const void *val, size_t vlen);

#endif
