/*
 * daemon/featd.c — featd's composition (see featd.h): every part built in
 * dependency order from its own conf, filled here from the config, and torn
 * down in reverse.
 */
#include "daemon/featd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

/* ---- checks -------------------------------------------------------------------------------- */

/* Loads serve.tls_* into *tls and the [auth] token files into *auth
 * (FEAT_ERR_CONFIG naming the key, nothing kept) and warns about listeners
 * that are plain text off loopback. */
static feat_err_t load_security(const feat_config_t *cfg, feat_tls_pem_t *tls, feat_auth_t **auth, char *err,
                                size_t errlen) {
    if (*cfg->serve_tls_cert) {
        feat_tls_files_t tf = {cfg->serve_tls_cert, "serve.tls_cert", cfg->serve_tls_key, "serve.tls_key",
                               cfg->serve_tls_client_ca, "serve.tls_client_ca"};
        if (feat_tls_load(&tf, tls, err, errlen)) return FEAT_ERR_CONFIG;
    } else if (!feat_addr_is_loopback(cfg->serve_listen)) {
        feat_log(FEAT_LOG_WARN, "featd", "serve.listen %s is not loopback and serve.plaintext = true: gRPC calls "
                 "(and their bearer tokens) cross the network in clear text", cfg->serve_listen);
    }
    if (feat_auth_load(cfg->auth_read_tokens_file, "auth.read_tokens_file", cfg->auth_admin_tokens_file,
                       "auth.admin_tokens_file", auth, err, errlen)) {
        feat_tls_pem_free(tls);
        return FEAT_ERR_CONFIG;
    }
    if (*cfg->http_listen && !*cfg->serve_tls_cert && !feat_addr_is_loopback(cfg->http_listen))
        feat_log(FEAT_LOG_WARN, "featd", "http.listen %s is not loopback: the HTTP/JSON API is plain text%s",
                 cfg->http_listen, *auth ? " and bearer tokens sent to it can be read on the network" : "");
    if (*cfg->redis_listen && !feat_addr_is_loopback(cfg->redis_listen))
        feat_log(FEAT_LOG_WARN, "featd", "redis.listen %s is not loopback: the Redis protocol is plain text%s",
                 cfg->redis_listen, *auth ? " and AUTH tokens sent to it can be read on the network" : "");
    if (!feat_addr_is_loopback(cfg->admin_listen))
        feat_log(FEAT_LOG_WARN, "featd", "admin.listen %s is not loopback: admin HTTP is plain text%s",
                 cfg->admin_listen,
                 *auth ? " and bearer tokens sent to it can be read on the network"
                       : " and, with no [auth] tokens, open to anyone who reaches it");
    return FEAT_OK;
}

/* "config: " before what a check wrote. */
static feat_err_t config_error(char *errstr, size_t errlen, const char *what) {
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s", what);
    snprintf(errstr, errlen, "config: %s", tmp);
    return FEAT_ERR_CONFIG;
}

/* The checks featd_check and featd_open share; keeps the TLS material and the
 * tokens for featd_open. */
static feat_err_t check(const feat_config_t *cfg, feat_tls_pem_t *tls, feat_auth_t **auth, char *errstr,
                        size_t errlen) {
    char err[1024];
    feat_ingest_conf_t kafka = {.kafka = cfg->kafka, .nkafka = cfg->nkafka}; /* all the check reads */
    if (feat_ingest_check_config(&kafka, err, sizeof(err)) || load_security(cfg, tls, auth, err, sizeof(err)))
        return config_error(errstr, errlen, err);
    return FEAT_OK;
}

feat_err_t featd_check(const feat_config_t *cfg, char *errstr, size_t errlen) {
    feat_tls_pem_t tls = {NULL, NULL, NULL};
    feat_auth_t *auth = NULL;
    feat_err_t rc = check(cfg, &tls, &auth, errstr, errlen);
    feat_tls_pem_free(&tls);
    feat_auth_destroy(auth);
    return rc;
}

/* mkdir -p with mode 0700 for every directory it creates. */
static feat_err_t mkdirs(const char *path, char *err, size_t errlen) {
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp)) {
        snprintf(err, errlen, "featd.data_dir: path too long");
        return FEAT_ERR_IO;
    }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "featd.data_dir: cannot create %s: %s", tmp, strerror(errno));
            return FEAT_ERR_IO;
        }
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "featd.data_dir: cannot create %s: %s", tmp, strerror(errno));
        return FEAT_ERR_IO;
    }
    struct stat sb;
    if (stat(tmp, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "featd.data_dir: %s is not a directory", tmp);
        return FEAT_ERR_IO;
    }
    if (sb.st_mode & 077)
        feat_log(FEAT_LOG_WARN, "featd", "featd.data_dir: %s is open to other users (mode %03o); chmod 700 it", tmp,
                 (unsigned)(sb.st_mode & 0777));
    if (access(tmp, W_OK) != 0) {
        snprintf(err, errlen, "featd.data_dir: %s is not writable: %s", tmp, strerror(errno));
        return FEAT_ERR_IO;
    }
    return FEAT_OK;
}

/* ---- each part's conf, from the config -------------------------------------------------------- */

static feat_store_conf_t store_conf(const feat_config_t *c, const char *path) {
    return (feat_store_conf_t){.path = path, .tables = c->tables, .ntables = c->ntables, .sync = c->store_sync,
                               .block_cache_bytes = c->store_block_cache, .write_buffer_bytes = c->store_write_buffer,
                               .write_buffers = (int)c->store_write_buffers};
}

static feat_ingest_conf_t ingest_conf(const feat_config_t *c, const char *bootstrap, feat_metrics_t *metrics) {
    feat_ingest_conf_t ic = {.kafka = c->kafka, .nkafka = c->nkafka, .bootstrap = bootstrap,
                             .batch_max = c->ingest_batch_max, .commit_ms = c->ingest_commit_ms, .metrics = metrics};
    feat_decode_conf_from_config(c, &ic.decode);
    return ic;
}

static feat_drift_conf_t drift_conf(const feat_config_t *c) {
    feat_drift_conf_t dc;
    feat_drift_conf_from_config(c, &dc);
    return dc;
}

static feat_demo_conf_t demo_conf(const feat_config_t *c, const char *bootstrap) {
    return (feat_demo_conf_t){
        .tables = c->tables, .ntables = c->ntables, .models = c->models, .nmodels = c->nmodels,
        .rate = c->demo_rate, .entities = c->demo_entities, .shift_after_ms = c->demo_shift_after_ms,
        .shift_feature = c->demo_shift_feature, .kafka = c->kafka, .nkafka = c->nkafka, .bootstrap = bootstrap,
    };
}

static feat_serve_conf_t serve_conf(const feat_config_t *c) {
    return (feat_serve_conf_t){
        .tables = c->tables, .ntables = c->ntables, .models = c->models, .nmodels = c->nmodels,
        .max_keys = c->serve_max_keys, .max_history_rows = c->serve_max_history_rows, .max_key = c->ingest_max_key,
    };
}

/* Whether featd publishes anything to Kafka itself. */
static int needs_producer(const feat_config_t *cfg) {
    if (cfg->drift_enabled && *cfg->drift_alert_topic) return 1;
    for (size_t i = 0; i < cfg->nmodels; i++)
        if (*cfg->models[i].prediction_topic) return 1;
    return 0;
}

/* ---- the ingest observers ---------------------------------------------------------------------- */

/* Every decoded event feeds drift monitoring. */
static void drift_observer(void *arg, uint32_t table, const char *key, size_t klen, int64_t ts,
                           const uint16_t *fidx, const feat_value_t *vals, size_t n) {
    (void)key; (void)klen;
    feat_drift_observe(arg, table, fidx, vals, n, ts);
}

/* Every label counts toward retrain_after_labels and joins live quality. */
static void label_observer(void *arg, uint32_t model, const char *key, size_t klen, int64_t ts, double label) {
    feat_models_on_label(arg, model, key, klen, ts, label);
}

/* ---- open, part by part --------------------------------------------------------------------------- */

/* Step 2 of featd.h: the embedded broker, its topics and its address file. */
static feat_err_t open_broker(featd_t *d, char *err, size_t errlen) {
    const feat_config_t *cfg = d->cfg;
    char path[PATH_MAX];
    d->broker = feat_broker_new((int)cfg->kafka_embedded_brokers, err, errlen);
    if (!d->broker) {
        snprintf(err, errlen, "embedded broker failed");
        return FEAT_ERR_KAFKA;
    }
    feat_broker_topics_conf_t tc = {.tables = cfg->tables, .ntables = cfg->ntables, .models = cfg->models,
                                    .nmodels = cfg->nmodels, .drift_alert_topic = cfg->drift_alert_topic,
                                    .partitions = (int)cfg->kafka_partitions};
    if (feat_broker_create_topics(d->broker, &tc, err, errlen)) return FEAT_ERR_KAFKA;
    d->bootstrap = strdup(feat_broker_bootstraps(d->broker));
    snprintf(path, sizeof(path), "%s/kafka.bootstrap", cfg->data_dir);
    if (!d->bootstrap || feat_write_file_atomic(path, d->bootstrap, strlen(d->bootstrap))) {
        snprintf(err, errlen, "cannot write %s", path);
        return FEAT_ERR_IO;
    }
    feat_log(FEAT_LOG_INFO, "featd", "embedded Kafka at %s (written to %s)", d->bootstrap, path);
    if (*cfg->kafka_embedded_control_file &&
        feat_broker_control_start(d->broker, cfg->kafka_embedded_control_file, err, errlen))
        return FEAT_ERR_KAFKA;
    return FEAT_OK;
}

/* Step 3: the store and the row cache. */
static feat_err_t open_store(featd_t *d, char *err, size_t errlen) {
    const feat_config_t *cfg = d->cfg;
    char path[PATH_MAX], msg[1024];
    snprintf(path, sizeof(path), "%s/db", cfg->data_dir);
    feat_store_conf_t sc = store_conf(cfg, path);
    feat_err_t rc = feat_store_open_rc(&sc, &d->st, msg, sizeof(msg));
    if (rc) {
        snprintf(err, errlen, "store: %s", msg);
        return rc;
    }
    if (d->broker) {
        /* the in-process broker starts with empty logs: offsets stored by an
         * earlier run name records that no longer exist */
        uint64_t n = 0;
        if (feat_store_clear_offsets(d->st, &n) == FEAT_OK && n > 0)
            feat_log(FEAT_LOG_INFO, "featd", "embedded broker starts empty; forgot %llu stored offsets of the last run",
                     (unsigned long long)n);
    }
    for (size_t i = 0; i < cfg->ntables; i++) { /* what featd computes itself, once at start */
        const feat_table_conf_t *t = &cfg->tables[i];
        if (!t->naggs) continue;
        feat_buf_t b = FEAT_BUF_INIT;
        for (size_t f = t->nplain; f < t->nfeatures; f++)
            feat_buf_printf(&b, "%s%s", f > t->nplain ? ", " : "", t->features[f].name);
        feat_log(FEAT_LOG_INFO, "featd", "table %s aggregates its events into %zu features (%s); tiles of %lld, %lld "
                 "and %lld ms", t->name, t->nfeatures - t->nplain, b.data ? b.data : "", (long long)t->agg_level_ms[0],
                 (long long)t->agg_level_ms[1], (long long)t->agg_level_ms[2]);
        feat_buf_free(&b);
    }
    if (cfg->serve_cache_bytes > 0) {
        feat_cache_conf_t cc = {.max_bytes = (size_t)cfg->serve_cache_bytes, .nshards = 64};
        d->cache = feat_cache_new(&cc, d->metrics, err, errlen);
        if (!d->cache) return FEAT_ERR_NOMEM;
        /* ingest's writes invalidate cached rows (see serve/cache.h) */
        feat_store_set_write_hook(d->st, feat_cache_write_hook, d->cache);
    }
    return FEAT_OK;
}

/* Step 4: the producer, the alert bus with its sinks, drift monitoring. */
static feat_err_t open_alerting(featd_t *d, char *err, size_t errlen) {
    const feat_config_t *cfg = d->cfg;
    if (!(d->flags & FEATD_NO_KAFKA) && needs_producer(cfg)) {
        char msg[1024];
        feat_producer_conf_t pc = {.kafka = cfg->kafka, .nkafka = cfg->nkafka, .bootstrap = d->bootstrap};
        d->producer = feat_producer_new(&pc, d->metrics, msg, sizeof(msg));
        if (!d->producer) {
            snprintf(err, errlen, "Kafka producer (drift.alert_topic, model.*.prediction_topic): %s", msg);
            return FEAT_ERR_KAFKA;
        }
    }
    if (!(d->flags & FEATD_NO_KAFKA)) { /* Push: low latency, and the partitioner every producer must share */
        char msg[1024];
        feat_producer_conf_t pc = {.kafka = cfg->kafka, .nkafka = cfg->nkafka, .bootstrap = d->bootstrap,
                                   .partitioner = strcmp(cfg->cluster_partitioner, "crc32") ? "murmur2_random"
                                                                                            : "consistent_random",
                                   .linger_ms = 1};
        if (!(d->push = feat_producer_new(&pc, d->metrics, msg, sizeof(msg)))) {
            snprintf(err, errlen, "Kafka producer (FeatureService.Push): %s", msg);
            return FEAT_ERR_KAFKA;
        }
        feat_decode_conf_from_config(cfg, &d->decode);
    }
    d->alerts = feat_alert_bus_new();
    if (!d->alerts) {
        snprintf(err, errlen, "out of memory");
        return FEAT_ERR_NOMEM;
    }
    if (!cfg->drift_enabled) return FEAT_OK;
    feat_drift_conf_t dc = drift_conf(cfg);
    d->drift = feat_drift_new(&dc, d->st, d->alerts, d->metrics, err, errlen);
    if (!d->drift) return FEAT_ERR_NOMEM;
    /* in this order: the log line first, as when drift logged its own */
    d->alert_log = (feat_alert_log_t){.recovery_windows = cfg->drift_recovery_windows};
    feat_alert_counters_init(&d->alert_counters, d->metrics);
    feat_alert_subscribe(d->alerts, "log", feat_alert_log_sink, &d->alert_log);
    feat_alert_subscribe(d->alerts, "metrics", feat_alert_metrics_sink, &d->alert_counters);
    if (*cfg->drift_alert_topic && d->producer) {
        d->alert_kafka = (feat_alert_kafka_t){.producer = d->producer, .topic = cfg->drift_alert_topic};
        feat_alert_subscribe(d->alerts, "kafka", feat_alert_kafka_sink, &d->alert_kafka);
    }
    if (*cfg->drift_webhook) {
        if (!d->base) {
            snprintf(err, errlen, "drift.webhook needs an event loop");
            return FEAT_ERR_INVALID;
        }
        feat_webhook_conf_t wc = {.url = cfg->drift_webhook, .queue_max = (size_t)cfg->drift_webhook_queue};
        d->webhook = feat_webhook_new(&wc, d->base, d->metrics, err, errlen);
        if (!d->webhook) return FEAT_ERR_INVALID;
        feat_alert_subscribe(d->alerts, "webhook", feat_alert_webhook_sink, d->webhook);
    }
    return FEAT_OK;
}

/* Step 5: the registry and the retrain sink; drift and the prediction log
 * start. */
/* train hands a champion's reference profiles to drift through this (train
 * does not know drift). */
static feat_err_t drift_reference(void *drift, const char *model, const char *feature, const void *blob, size_t len) {
    return feat_drift_set_model_reference(drift, model, feature, blob, len);
}

static feat_err_t open_models(featd_t *d, char *err, size_t errlen) {
    const feat_config_t *cfg = d->cfg;
    /* the registry hands its champions' references to drift before drift starts */
    feat_models_conf_t mc = {
        .models = cfg->models,
        .nmodels = cfg->nmodels,
        .sketch_k = (uint32_t)cfg->drift_sketch_k,
        .retrain_on_quality = cfg->drift_enabled && cfg->drift_retrain_on_drift,
        .reference = d->drift ? drift_reference : NULL,
        .reference_arg = d->drift,
    };
    d->models = feat_models_new(&mc, d->st, d->alerts, d->metrics, err, errlen);
    if (!d->models) return FEAT_ERR_IO;
    if (d->drift) {
        feat_alert_subscribe(d->alerts, "retrain", feat_models_alert_sink, d->models);
        if (feat_drift_start(d->drift)) {
            snprintf(err, errlen, "cannot start drift monitoring");
            return FEAT_ERR_NOMEM;
        }
    }
    if (!(d->flags & FEATD_NO_PREDLOG)) {
        feat_predlog_conf_t plc = {.models = cfg->models, .nmodels = cfg->nmodels};
        d->predlog = feat_predlog_new(&plc, d->st, d->models, d->drift, d->producer, d->metrics, err, errlen);
        if (!d->predlog || feat_predlog_start(d->predlog)) goto fail;
    }
    return FEAT_OK; /* the engine starts once serving is wired (its cluster hooks are serve's) */
fail:
    snprintf(err, errlen, "cannot start the prediction log");
    return FEAT_ERR_NOMEM;
}

/* Step 6: the cluster's membership (not started: models and serving hook
 * into it first). */
static feat_err_t open_cluster(featd_t *d, char *err, size_t errlen) {
    char msg[1024];
    feat_cluster_conf_t cc = {.cfg = d->cfg, .bootstrap = d->bootstrap, .metrics = d->metrics};
    d->cluster = feat_cluster_new(&cc, msg, sizeof(msg));
    if (!d->cluster) return strncmp(msg, "model.", 6) ? (snprintf(err, errlen, "%s", msg), FEAT_ERR_KAFKA)
                                                      : config_error(err, errlen, msg);
    return FEAT_OK;
}

/* Step 7: the handlers' context; in a cluster, the models' hooks into it
 * and the cluster's reader of the registry's records. */
static feat_err_t open_serve(featd_t *d, int64_t started_ms, char *err, size_t errlen) {
    d->serve = (feat_serve_t){
        .conf = serve_conf(d->cfg), .st = d->st, .cache = d->cache, .drift = d->drift, .models = d->models,
        .predlog = d->predlog, .auth = d->auth, .metrics = d->metrics, .started_ms = started_ms,
        .cluster = d->cluster, .push = d->push, .decode = d->push ? &d->decode : NULL,
    };
    atomic_init(&d->serve.shutting_down, 0);
    feat_predlog_set_shadow(d->predlog, feat_serve_shadow, &d->serve); /* shadow traffic (model.*.shadow) */
    if (feat_cluster_mode(d->cluster) == FEAT_CLUSTER_PARTITIONED &&
        !(d->serve.forward = d->forward = feat_forward_new(d->tls.cert ? &d->tls : NULL,
                                                           d->cfg->cluster_forward_timeout_ms, d->metrics))) {
        snprintf(err, errlen, "out of memory");
        return FEAT_ERR_NOMEM;
    }
    feat_models_cluster_t hooks;
    feat_serve_models_cluster(&d->serve, &hooks);
    feat_models_set_cluster(d->models, &hooks);
    feat_cluster_on_models(d->cluster, feat_serve_models_record, d->models);
    return FEAT_OK;
}

/* Step 8: ingest with its observers, the demo producer. */
static feat_err_t open_ingest(featd_t *d, char *err, size_t errlen) {
    const feat_config_t *cfg = d->cfg;
    char msg[1024];
    if (feat_cluster_start(d->cluster, err, errlen)) return FEAT_ERR_KAFKA;
    feat_ingest_conf_t ic = ingest_conf(cfg, d->bootstrap, d->metrics);
    ic.cluster = d->cluster;
    d->ingest = feat_ingest_new(&ic, d->st, msg, sizeof(msg));
    if (!d->ingest) return config_error(err, errlen, msg); /* it validates kafka.* */
    if (d->drift) feat_ingest_set_observer(d->ingest, drift_observer, d->drift);
    feat_ingest_set_label_observer(d->ingest, label_observer, d->models);
    if (feat_ingest_start(d->ingest, err, errlen)) return FEAT_ERR_KAFKA;
    if (cfg->demo_enabled) {
        feat_demo_conf_t dmc = demo_conf(cfg, d->bootstrap);
        d->demo = feat_demo_new(&dmc, err, errlen);
        if (!d->demo) return FEAT_ERR_INVALID; /* demo.shift_feature or a Kafka property: exit 1, as always */
        if (feat_demo_start(d->demo, err, errlen)) return FEAT_ERR_NOMEM;
    }
    return FEAT_OK;
}

/* Step 9: the gRPC server, admin HTTP, featd.addr. */
static feat_err_t open_listeners(featd_t *d, char *err, size_t errlen) {
    const feat_config_t *cfg = d->cfg;
    size_t nmethods;
    const feat_method_t *methods = feat_serve_methods(&nmethods);
    feat_server_conf_t gc = {
        .listen = cfg->serve_listen, .threads = (int)cfg->serve_threads,
        .calls_per_method = (int)cfg->serve_calls_per_method, .max_message = cfg->serve_max_message,
        .busy_poll_us = cfg->serve_busy_poll_us, .metrics = d->metrics,
        .authorize = d->auth ? feat_serve_authorize : NULL, .tls = d->tls.cert ? &d->tls : NULL,
        .shutdown_grace_ms = cfg->serve_shutdown_grace_ms,
    };
    if (d->auth)
        feat_log(FEAT_LOG_INFO, "featd", "bearer tokens required: %zu read, %zu admin",
                 feat_auth_count(d->auth, FEAT_AUTH_READ), feat_auth_count(d->auth, FEAT_AUTH_ADMIN));
    d->grpc = feat_server_new(&gc, methods, nmethods, &d->serve, err, errlen);
    if (d->grpc && feat_cluster_mode(d->cluster) == FEAT_CLUSTER_PARTITIONED) {
        /* the peers' listener: the same handlers on a copy of the context that never forwards */
        d->peer_serve = d->serve;
        d->peer_serve.peer = 1;
        atomic_init(&d->peer_serve.shutting_down, 0);
        gc.listen = cfg->cluster_listen;
        d->peer_grpc = feat_server_new(&gc, methods, nmethods, &d->peer_serve, err, errlen);
        if (!d->peer_grpc) { /* the error names serve.listen: name this key instead */
            char tmp[512];
            const char *why = strchr(err, ':');
            snprintf(tmp, sizeof(tmp), "cluster.listen%s", why ? why : ": cannot listen");
            snprintf(err, errlen, "%s", tmp);
        }
        if (d->peer_grpc && feat_server_start(d->peer_grpc, err, errlen)) return FEAT_ERR_IO;
    }
    if (d->tls.cert && *cfg->http_listen && !(d->http_tls = feat_tls_server_new(&d->tls, err, errlen)))
        return FEAT_ERR_CONFIG;
    feat_tls_pem_free(&d->tls); /* gRPC and the HTTP/JSON API hold their own copies */
    if (!d->grpc || (feat_cluster_mode(d->cluster) == FEAT_CLUSTER_PARTITIONED && !d->peer_grpc) ||
        feat_server_start(d->grpc, err, errlen))
        return FEAT_ERR_IO;
    if (!d->base) {
        snprintf(err, errlen, "admin.listen needs an event loop");
        return FEAT_ERR_INVALID;
    }
    feat_http_conf_t hc = {.listen = cfg->admin_listen};
    d->http = feat_http_new(&hc, d->base, &d->serve, err, errlen);
    if (!d->http) return FEAT_ERR_IO;
    if (*cfg->http_listen) {
        feat_api_conf_t ac = {.listen = cfg->http_listen, .threads = (int)cfg->http_threads,
                              .max_body = cfg->http_max_body, .tls = d->http_tls};
        if (!(d->api = feat_api_new(&ac, &d->serve, err, errlen))) return FEAT_ERR_IO;
    }
    if (*cfg->redis_listen) {
        feat_redis_conf_t rc = {.listen = cfg->redis_listen, .threads = (int)cfg->redis_threads,
                                .max_clients = cfg->redis_max_clients, .max_request = cfg->redis_max_request,
                                .timeout_s = cfg->redis_timeout};
        if (!(d->redis = feat_redis_new(&rc, &d->serve, err, errlen))) return FEAT_ERR_IO;
    }
    /* where we listen, for tools and tests (ports may be chosen by the OS) */
    char addr[600], host[256], path[PATH_MAX];
    const char *c = strrchr(cfg->serve_listen, ':');
    snprintf(host, sizeof(host), "%.*s", (int)(c - cfg->serve_listen), cfg->serve_listen);
    const char *ac = strrchr(cfg->admin_listen, ':');
    int n = snprintf(addr, sizeof(addr), "{\"grpc\": \"%s:%d\", \"admin\": \"%.*s:%d\"", host,
                     feat_server_port(d->grpc), (int)(ac - cfg->admin_listen), cfg->admin_listen,
                     feat_http_port(d->http));
    if (d->api) { /* the HTTP/JSON API's address, like the others' (its port may be chosen by the OS) */
        const char *hcolon = strrchr(cfg->http_listen, ':');
        n += snprintf(addr + n, sizeof(addr) - (size_t)n, ", \"http\": \"%.*s:%d\"", (int)(hcolon - cfg->http_listen),
                      cfg->http_listen, feat_api_port(d->api));
    }
    if (d->redis) {
        const char *rcolon = strrchr(cfg->redis_listen, ':');
        n += snprintf(addr + n, sizeof(addr) - (size_t)n, ", \"redis\": \"%.*s:%d\"",
                      (int)(rcolon - cfg->redis_listen), cfg->redis_listen, feat_redis_port(d->redis));
    }
    n += snprintf(addr + n, sizeof(addr) - (size_t)n, "}\n");
    snprintf(path, sizeof(path), "%s/featd.addr", cfg->data_dir);
    if (feat_write_file_atomic(path, addr, (size_t)n)) feat_log(FEAT_LOG_WARN, "featd", "cannot write %s", path);
    return FEAT_OK;
}

feat_err_t featd_open(const feat_config_t *cfg, const featd_opts_t *opts, featd_t **out, char *errstr,
                      size_t errlen) {
    static const featd_opts_t none = {0, NULL, NULL};
    if (!opts) opts = &none;
    *out = NULL;
    featd_t *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(errstr, errlen, "out of memory");
        return FEAT_ERR_NOMEM;
    }
    d->cfg = cfg;
    d->flags = opts->flags;
    d->metrics = opts->metrics ? opts->metrics : feat_metrics_global();
    d->base = opts->base;
    int64_t started_ms = feat_now_ms();
    feat_err_t rc = check(cfg, &d->tls, &d->auth, errstr, errlen);
    if (!rc && geteuid() == 0)
        feat_log(FEAT_LOG_WARN, "featd", "running as root; run featd as its own user (see deploy/featd.service)");
    if (!rc) rc = mkdirs(cfg->data_dir, errstr, errlen);
    if (!rc && cfg->kafka_embedded && !(d->flags & FEATD_NO_KAFKA)) rc = open_broker(d, errstr, errlen);
    if (!rc) rc = open_store(d, errstr, errlen);
    if (!rc) rc = open_alerting(d, errstr, errlen);
    if (!rc) rc = open_models(d, errstr, errlen);
    if (!rc && !(d->flags & FEATD_NO_KAFKA)) rc = open_cluster(d, errstr, errlen);
    if (!rc) rc = open_serve(d, started_ms, errstr, errlen);
    if (!rc && !(d->flags & FEATD_NO_KAFKA)) rc = open_ingest(d, errstr, errlen);
    d->serve.ingest = d->ingest;
    if (!rc && feat_models_start(d->models)) {
        snprintf(errstr, errlen, "cannot start the training engine");
        rc = FEAT_ERR_NOMEM;
    }
    if (!rc && !(d->flags & FEATD_NO_LISTENERS)) rc = open_listeners(d, errstr, errlen);
    if (rc) {
        featd_close(d);
        return rc;
    }
    *out = d;
    return FEAT_OK;
}

/* ---- close ------------------------------------------------------------------------------------------ */

/* At a stop: what the broker held that featd had not applied.  The
 * embedded broker keeps its log in memory, so those records are lost with
 * this process; a real broker keeps them for the next start. */
static void report_unapplied(featd_t *d) {
    int64_t left = feat_ingest_unapplied_at_stop(d->ingest);
    feat_ingest_stats_t s;
    feat_ingest_get_stats(d->ingest, &s);
    if (d->broker && left < 0)
        feat_log(FEAT_LOG_WARN, "featd", "embedded broker: could not count the records it held beyond what featd "
                                         "applied; they are lost with it");
    else if (d->broker)
        feat_log(left ? FEAT_LOG_WARN : FEAT_LOG_INFO, "featd",
                 "embedded broker: %lld record(s) produced to it were never applied; its log is in memory and goes "
                 "with this process", (long long)left);
    else if (left > 0)
        feat_log(FEAT_LOG_INFO, "featd", "%lld record(s) in Kafka are not applied yet; the next start resumes at them",
                 (long long)left);
    if (s.gap_records)
        feat_log(FEAT_LOG_WARN, "featd", "%llu record(s) were deleted from the log before featd applied them (gaps) "
                                         "since start; see featd_ingest_gap_records_total",
                 (unsigned long long)s.gap_records);
}

void featd_close(featd_t *d) {
    if (!d) return;
    atomic_store(&d->serve.shutting_down, 1); /* /readyz and Status say not ready from now on */
    atomic_store(&d->peer_serve.shutting_down, 1);
    feat_server_stop(d->grpc);
    feat_server_stop(d->peer_grpc);
    feat_api_destroy(d->api);         /* its calls finish first */
    feat_tls_server_free(d->http_tls);
    feat_redis_destroy(d->redis);
    feat_http_destroy(d->http);
    feat_demo_destroy(d->demo);
    feat_predlog_destroy(d->predlog); /* writes what serving logged */
    feat_ingest_stop(d->ingest);
    if (d->ingest) report_unapplied(d);
    feat_ingest_destroy(d->ingest);
    feat_models_stop(d->models);      /* cancels a run in progress (it may be asking the cluster) */
    feat_cluster_destroy(d->cluster); /* after ingest gave its partitions up: the leave record */
    feat_drift_destroy(d->drift);     /* judges the windows already closed */
    feat_models_destroy(d->models);
    feat_producer_destroy(d->producer);
    feat_producer_destroy(d->push);
    feat_webhook_destroy(d->webhook);
    feat_alert_bus_destroy(d->alerts); /* no publisher is left */
    feat_server_destroy(d->grpc);
    feat_server_destroy(d->peer_grpc);
    feat_forward_destroy(d->forward);
    if (d->st) feat_store_set_write_hook(d->st, NULL, NULL);
    feat_cache_destroy(d->cache);
    feat_store_close(d->st);
    feat_broker_destroy(d->broker);
    free(d->bootstrap);
    feat_tls_pem_free(&d->tls);
    feat_auth_destroy(d->auth); /* after the servers that check tokens */
    free(d);
}
