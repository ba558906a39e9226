/*
 * daemon/main.c — featd's main: parse arguments, load the config, start the
 * modules in dependency order, run the event loop, stop in reverse order.
 *
 *   featd --config FILE [--demo] [--set section.key=value]...
 *   featd --config FILE --check [--set section.key=value]...
 *   featd --version | --config-reference | --config-example
 *
 * Exit status: 0 after a clean stop, 1 on a runtime failure (store, broker),
 * 2 on bad arguments or configuration (one line naming the key).
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "drift/monitor.h"
#include "ingest/producer.h"
#include "admin/alerts.h"
#include "serve/auth.h"
#include "serve/cache.h"
#include "serve/predlog.h"
#include "train/models.h"
#include "daemon/daemon.h"
#include "admin/http.h"
#include "rpc/rpc.h"
#include "rpc/tls.h"
#include "admin/webhook.h"

typedef struct loop_ctx {
    featd_t *fd;
    struct event_base *base;
    int exit_code;
    uint64_t last_events;
    uint64_t last_ns;
    int64_t last_progress_ms;
} loop_ctx_t;

static void usage(FILE *f) {
    fprintf(f, "usage: featd --config FILE [--demo] [--set section.key=value]...\n"
               "       featd --version\n"
               "       featd --config FILE --check   (validate the config and exit)\n"
               "       featd --config-reference | --config-example\n");
}

/* mkdir -p with mode 0700 for every directory it creates. */
static int mkdirs(const char *path, char *err, size_t errlen) {
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp)) {
        snprintf(err, errlen, "featd.data_dir: path too long");
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "featd.data_dir: cannot create %s: %s", tmp, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "featd.data_dir: cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (stat(tmp, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "featd.data_dir: %s is not a directory", tmp);
        return -1;
    }
    if (sb.st_mode & 077)
        feat_log(FEAT_LOG_WARN, "featd", "featd.data_dir: %s is open to other users (mode %03o); chmod 700 it", tmp,
                 (unsigned)(sb.st_mode & 0777));
    if (access(tmp, W_OK) != 0) {
        snprintf(err, errlen, "featd.data_dir: %s is not writable: %s", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    loop_ctx_t *lc = arg;
    feat_log(FEAT_LOG_INFO, "featd", "%s received; stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&lc->fd->shutting_down, 1);
    event_base_loopbreak(lc->base);
}

static void progress(loop_ctx_t *lc) {
    featd_t *fd = lc->fd;
    feat_ingest_stats_t s;
    feat_ingest_get_stats(fd->ingest, &s);
    uint64_t now_ns = feat_mono_ns();
    double secs = lc->last_ns ? (double)(now_ns - lc->last_ns) / 1e9 : 0;
    double rate = secs > 0 ? (double)(s.events + s.labels + s.dead_letters - lc->last_events) / secs : 0;
    lc->last_events = s.events + s.labels + s.dead_letters;
    lc->last_ns = now_ns;
    feat_partition_status_t parts[256];
    size_t np = feat_ingest_partitions(fd->ingest, parts, 256);
    int64_t lag = 0;
    int lag_known = 0;
    for (size_t i = 0; i < np && i < 256; i++)
        if (parts[i].lag >= 0) { lag += parts[i].lag; lag_known = 1; }
    int64_t newest = 0;
    for (size_t t = 0; t < fd->cfg->ntables; t++) {
        int64_t n = feat_ingest_newest_event(fd->ingest, t);
        if (n > newest) newest = n;
    }
    char fresh[FEAT_DURATION_MAX] = "-";
    if (newest) feat_format_duration(feat_now_ms() - newest, fresh, sizeof(fresh));
    char lagbuf[32] = "-";
    if (lag_known) snprintf(lagbuf, sizeof(lagbuf), "%lld", (long long)lag);
    /* Store sizes are RocksDB's key estimates, free to read (an exact count
     * is a scan; `featd-inspect online | wc -l` counts entities).  The
     * online estimate counts every merge operand not yet compacted, so it
     * runs well above the number of entities: the line says so. */
    feat_log(FEAT_LOG_INFO, "progress",
             "%.0f msgs/s | applied %llu events, %llu labels, %llu dead letters | lag %s over %zu partitions, "
             "%llu lost to gaps | "
             "store ~%llu history rows, ~%llu online keys (RocksDB estimates; online counts unmerged versions) | "
             "freshness %s",
             rate, (unsigned long long)s.events, (unsigned long long)s.labels, (unsigned long long)s.dead_letters,
             lagbuf, np, (unsigned long long)s.gap_records,
             (unsigned long long)feat_store_estimate_keys(fd->st, FEAT_CF_OFFLINE),
             (unsigned long long)feat_store_estimate_keys(fd->st, FEAT_CF_ONLINE), fresh);
}

/* At a stop: what the broker held that featd had not applied.  The
 * embedded broker keeps its log in memory, so those records are lost with
 * this process; a real broker keeps them for the next start. */
static void report_unapplied(featd_t *fd) {
    int64_t left = feat_ingest_unapplied_at_stop(fd->ingest);
    feat_ingest_stats_t s;
    feat_ingest_get_stats(fd->ingest, &s);
    if (fd->broker && left < 0)
        feat_log(FEAT_LOG_WARN, "featd", "embedded broker: could not count the records it held beyond what featd "
                                         "applied; they are lost with it");
    else if (fd->broker)
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

static void on_tick(evutil_socket_t s, short what, void *arg) {
    (void)s; (void)what;
    loop_ctx_t *lc = arg;
    featd_t *fd = lc->fd;
    if (feat_ingest_failed(fd->ingest)) {
        feat_ingest_stats_t st;
        feat_ingest_get_stats(fd->ingest, &st);
        feat_log(FEAT_LOG_ERROR, "featd", "ingest stopped: %s; shutting down", st.error);
        lc->exit_code = 1;
        event_base_loopbreak(lc->base);
        return;
    }
    int64_t now = feat_now_ms();
    if (fd->cfg->progress_ms > 0 && now - lc->last_progress_ms >= fd->cfg->progress_ms) {
        lc->last_progress_ms = now;
        progress(lc);
    }
}

/* The ingest observer: every decoded event feeds drift monitoring. */
static void drift_observer(void *arg, uint32_t table, const char *key, size_t klen, int64_t ts,
                           const uint16_t *fidx, const feat_value_t *vals, size_t n) {
    (void)key; (void)klen;
    feat_drift_observe(arg, table, fidx, vals, n, ts);
}

/* Every label counts toward retrain_after_labels and joins live quality. */
static void label_observer(void *arg, uint32_t model, const char *key, size_t klen, int64_t ts, double label) {
    feat_models_on_label(arg, model, key, klen, ts, label);
}

/* Whether featd publishes anything to Kafka itself. */
static int needs_producer(const feat_config_t *cfg) {
    if (cfg->drift_enabled && *cfg->drift_alert_topic) return 1;
    for (size_t i = 0; i < cfg->nmodels; i++)
        if (*cfg->models[i].prediction_topic) return 1;
    return 0;
}

/* The drift monitor's conf, from [drift], the tables and the models. */
static feat_drift_conf_t drift_conf(const feat_config_t *cfg) {
    return (feat_drift_conf_t){
        .tables = cfg->tables, .ntables = cfg->ntables, .models = cfg->models, .nmodels = cfg->nmodels,
        .window_events = cfg->drift_window_events, .window_ms = cfg->drift_window_ms,
        .min_window = cfg->drift_min_window, .reference_events = cfg->drift_reference_events,
        .sketch_k = cfg->drift_sketch_k, .bins = cfg->drift_bins, .recovery_windows = cfg->drift_recovery_windows,
        .history = cfg->drift_history, .ks = cfg->drift_ks, .psi = cfg->drift_psi, .kl = cfg->drift_kl,
        .js = cfg->drift_js, .p_value = cfg->drift_p_value, .retrain_on_drift = cfg->drift_retrain_on_drift,
    };
}

/* The gRPC server's authorize hook when [auth] names token files: runs for
 * every call on its worker thread (constant-time comparison, no allocation). */
static int grpc_authorize(void *app, const feat_method_t *m, const char *token, char *msg, size_t msglen) {
    featd_t *fd = app;
    feat_auth_level_t l = token ? feat_auth_check(fd->auth, token, strlen(token)) : FEAT_AUTH_NONE;
    if (l == FEAT_AUTH_NONE) {
        snprintf(msg, msglen, token ? "unknown bearer token" : "no bearer token (send \"authorization: Bearer TOKEN\")");
        return FEAT_ERR_UNAUTHENTICATED;
    }
    if (m->access == FEAT_RPC_ADMIN && l != FEAT_AUTH_ADMIN) {
        snprintf(msg, msglen, "%s needs an admin token (auth.admin_tokens_file); this one may only read", m->name);
        return FEAT_ERR_PERMISSION;
    }
    return FEAT_OK;
}

/* Reads serve.tls_* and the [auth] token files (exit 2 naming the key on
 * failure) and warns about listeners that are plain text off loopback. */
static int load_security(featd_t *fd, feat_tls_pem_t *tls, char *err, size_t errlen) {
    const feat_config_t *cfg = fd->cfg;
    if (*cfg->serve_tls_cert) {
        feat_tls_files_t tf = {cfg->serve_tls_cert, "serve.tls_cert", cfg->serve_tls_key, "serve.tls_key",
                               cfg->serve_tls_client_ca, "serve.tls_client_ca"};
        if (feat_tls_load(&tf, tls, err, errlen)) return FEAT_ERR_CONFIG;
    } else if (!feat_addr_is_loopback(cfg->serve_listen)) {
        feat_log(FEAT_LOG_WARN, "featd", "serve.listen %s is not loopback and serve.plaintext = true: gRPC calls "
                 "(and their bearer tokens) cross the network in clear text", cfg->serve_listen);
    }
    if (feat_auth_load(cfg->auth_read_tokens_file, "auth.read_tokens_file", cfg->auth_admin_tokens_file,
                       "auth.admin_tokens_file", &fd->auth, err, errlen)) {
        feat_tls_pem_free(tls);
        return FEAT_ERR_CONFIG;
    }
    if (!feat_addr_is_loopback(cfg->admin_listen))
        feat_log(FEAT_LOG_WARN, "featd", "admin.listen %s is not loopback: admin HTTP is plain text%s",
                 cfg->admin_listen,
                 fd->auth ? " and bearer tokens sent to it can be read on the network"
                          : " and, with no [auth] tokens, open to anyone who reaches it");
    return FEAT_OK;
}

int main(int argc, char **argv) {
    const char *cfg_path = NULL;
    int demo = 0, check_only = 0;
    const char *sets[64];    /* --set, in order */
    int nsets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--version")) {
            printf("featd %s\n", FEATD_VERSION);
            return 0;
        } else if (!strcmp(a, "--config-reference")) {
            feat_buf_t b = FEAT_BUF_INIT;
            feat_config_reference(&b);
            fwrite(b.data, 1, b.len, stdout);
            feat_buf_free(&b);
            return 0;
        } else if (!strcmp(a, "--config-example")) {
            feat_buf_t b = FEAT_BUF_INIT;
            feat_config_example(&b);
            fwrite(b.data, 1, b.len, stdout);
            feat_buf_free(&b);
            return 0;
        } else if (!strcmp(a, "--check")) {
            check_only = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--config") && i + 1 < argc) {
            cfg_path = argv[++i];
        } else if (!strcmp(a, "--demo")) {
            demo = 1;
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            if (nsets == (int)(sizeof(sets) / sizeof(sets[0]))) {
                fprintf(stderr, "featd: --set %s: at most %d --set\n", argv[i + 1], nsets);
                return 2;
            }
            sets[nsets++] = argv[++i];
        } else {
            fprintf(stderr, "featd: unknown argument %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!cfg_path) {
        fprintf(stderr, "featd: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    char err[1024];
    featd_t fd;
    memset(&fd, 0, sizeof(fd));
    /* --set is applied over the file before validation, so it may supply a
     * key the file lacks; a bad override is refused like a bad file */
    fd.cfg = feat_config_load_set(cfg_path, sets, (size_t)nsets, err, sizeof(err));
    if (!fd.cfg) {
        fprintf(stderr, "featd: config: %s\n", err);
        return 2;
    }
    if (feat_ingest_check_config(fd.cfg, err, sizeof(err))) {
        fprintf(stderr, "featd: config: %s\n", err);
        feat_config_free(fd.cfg);
        return 2;
    }
    feat_tls_pem_t tls = {NULL, NULL, NULL};
    if (load_security(&fd, &tls, err, sizeof(err))) {
        fprintf(stderr, "featd: config: %s\n", err);
        feat_config_free(fd.cfg);
        return 2;
    }
    if (check_only) {
        printf("featd: config %s is valid\n", cfg_path);
        feat_tls_pem_free(&tls);
        feat_auth_destroy(fd.auth);
        feat_config_free(fd.cfg);
        return 0;
    }
    if (demo) fd.cfg->demo_enabled = 1;
    feat_config_t *cfg = fd.cfg;
    feat_log_set_level((feat_log_level_t)cfg->log_level);
    if (cfg->log_file && *cfg->log_file && feat_log_set_file(cfg->log_file)) {
        fprintf(stderr, "featd: config: featd.log_file: cannot open %s: %s\n", cfg->log_file, strerror(errno));
        feat_tls_pem_free(&tls);
        feat_auth_destroy(fd.auth);
        feat_config_free(cfg);
        return 2;
    }
    if (geteuid() == 0)
        feat_log(FEAT_LOG_WARN, "featd", "running as root; run featd as its own user (see deploy/featd.service)");
    fd.metrics = feat_metrics_global();
    fd.started_ms = feat_now_ms();
    int code = 1;
    struct event_base *base = NULL;
    feat_alert_bus_t *alerts = NULL;
    struct event *ev_int = NULL, *ev_term = NULL, *ev_tick = NULL;
    loop_ctx_t lc;
    memset(&lc, 0, sizeof(lc));
    signal(SIGPIPE, SIG_IGN);

    if (mkdirs(cfg->data_dir, err, sizeof(err))) {
        fprintf(stderr, "featd: %s\n", err);
        feat_tls_pem_free(&tls);
        feat_auth_destroy(fd.auth);
        feat_config_free(cfg);
        return 1;
    }
    char path[PATH_MAX];
    if (cfg->kafka_embedded) {
        fd.broker = feat_broker_new((int)cfg->kafka_embedded_brokers, err, sizeof(err));
        if (!fd.broker || feat_broker_create_config_topics(fd.broker, cfg, err, sizeof(err))) {
            fprintf(stderr, "featd: %s\n", fd.broker ? err : "embedded broker failed");
            goto out;
        }
        fd.bootstrap = strdup(feat_broker_bootstraps(fd.broker));
        snprintf(path, sizeof(path), "%s/kafka.bootstrap", cfg->data_dir);
        if (!fd.bootstrap || feat_write_file_atomic(path, fd.bootstrap, strlen(fd.bootstrap))) {
            fprintf(stderr, "featd: cannot write %s\n", path);
            goto out;
        }
        feat_log(FEAT_LOG_INFO, "featd", "embedded Kafka at %s (written to %s)", fd.bootstrap, path);
        if (*cfg->kafka_embedded_control_file &&
            feat_broker_control_start(fd.broker, cfg->kafka_embedded_control_file, err, sizeof(err))) {
            fprintf(stderr, "featd: %s\n", err);
            goto out;
        }
    }
    snprintf(path, sizeof(path), "%s/db", cfg->data_dir);
    feat_store_conf_t sc = {path, cfg, cfg->store_sync, cfg->store_block_cache, cfg->store_write_buffer, 0,
                            (int)cfg->store_write_buffers};
    fd.st = feat_store_open(&sc, err, sizeof(err));
    if (!fd.st) {
        fprintf(stderr, "featd: store: %s\n", err);
        code = strstr(err, "table.") == err ? 2 : 1;
        goto out;
    }
    if (fd.broker) {
        /* the in-process broker starts with empty logs: offsets stored by an
         * earlier run name records that no longer exist */
        int64_t n = feat_store_clear_offsets(fd.st);
        if (n > 0)
            feat_log(FEAT_LOG_INFO, "featd", "embedded broker starts empty; forgot %lld stored offsets of the last run",
                     (long long)n);
    }
    if (cfg->serve_cache_bytes > 0) {
        fd.cache = feat_cache_new((size_t)cfg->serve_cache_bytes, 64, fd.metrics);
        if (!fd.cache) {
            fprintf(stderr, "featd: serve.cache: cannot allocate the cache\n");
            goto out;
        }
        /* ingest's writes invalidate cached rows (see serve/cache.h) */
        feat_store_set_write_hook(fd.st, feat_cache_write_hook, fd.cache);
    }
    evthread_use_pthreads(); /* the webhook is fed from the drift thread */
    base = event_base_new();
    if (!base) {
        fprintf(stderr, "featd: cannot create the event loop\n");
        goto out;
    }
    if (needs_producer(cfg)) {
        fd.producer = feat_producer_new(cfg, fd.bootstrap, fd.metrics, err, sizeof(err));
        if (!fd.producer) {
            fprintf(stderr, "featd: Kafka producer (drift.alert_topic, model.*.prediction_topic): %s\n", err);
            goto out;
        }
    }
    alerts = feat_alert_bus_new();
    if (!alerts) {
        fprintf(stderr, "featd: out of memory\n");
        goto out;
    }
    feat_alert_log_t alert_log = {.recovery_windows = cfg->drift_recovery_windows};
    feat_alert_counters_t alert_counters;
    feat_alert_kafka_t alert_kafka = {.producer = fd.producer, .topic = cfg->drift_alert_topic};
    if (cfg->drift_enabled) {
        feat_drift_conf_t dc = drift_conf(cfg);
        fd.drift = feat_drift_new(&dc, fd.st, alerts, fd.metrics, err, sizeof(err));
        if (!fd.drift) {
            fprintf(stderr, "featd: %s\n", err);
            goto out;
        }
        feat_alert_counters_init(&alert_counters, fd.metrics);
        feat_alert_subscribe(alerts, "log", feat_alert_log_sink, &alert_log);
        feat_alert_subscribe(alerts, "metrics", feat_alert_metrics_sink, &alert_counters);
        if (*cfg->drift_alert_topic) feat_alert_subscribe(alerts, "kafka", feat_alert_kafka_sink, &alert_kafka);
        if (*cfg->drift_webhook) {
            fd.webhook = feat_webhook_new(base, cfg->drift_webhook, (size_t)cfg->drift_webhook_queue, fd.metrics, err,
                                          sizeof(err));
            if (!fd.webhook) {
                fprintf(stderr, "featd: %s\n", err);
                goto out;
            }
            feat_alert_subscribe(alerts, "webhook", feat_alert_webhook_sink, fd.webhook);
        }
    }
    /* the registry hands its champions' references to drift before drift starts */
    fd.models = feat_models_new(cfg, fd.st, fd.drift, alerts, fd.metrics, err, sizeof(err));
    if (!fd.models) {
        fprintf(stderr, "featd: %s\n", err);
        goto out;
    }
    if (fd.drift) {
        feat_alert_subscribe(alerts, "retrain", feat_models_drift_sink, fd.models);
        if (feat_drift_start(fd.drift)) {
            fprintf(stderr, "featd: cannot start drift monitoring\n");
            goto out;
        }
    }
    fd.predlog = feat_predlog_new(cfg, fd.st, fd.models, fd.drift, fd.producer, fd.metrics);
    if (!fd.predlog || feat_predlog_start(fd.predlog) || feat_models_start(fd.models)) {
        fprintf(stderr, "featd: cannot start the prediction log or the training engine\n");
        goto out;
    }
    feat_ingest_conf_t ic = {cfg, fd.bootstrap, fd.metrics};
    fd.ingest = feat_ingest_new(&ic, fd.st, err, sizeof(err));
    if (!fd.ingest) {
        fprintf(stderr, "featd: config: %s\n", err);
        code = 2;
        goto out;
    }
    if (fd.drift) feat_ingest_set_observer(fd.ingest, drift_observer, fd.drift);
    feat_ingest_set_label_observer(fd.ingest, label_observer, fd.models);
    if (feat_ingest_start(fd.ingest, err, sizeof(err))) {
        fprintf(stderr, "featd: %s\n", err);
        goto out;
    }
    if (cfg->demo_enabled) {
        fd.demo = feat_demo_start(cfg, fd.bootstrap, err, sizeof(err));
        if (!fd.demo) {
            fprintf(stderr, "featd: %s\n", err);
            goto out;
        }
    }
    size_t nmethods;
    const feat_method_t *methods = featd_methods(&nmethods);
    feat_server_conf_t gc = {cfg->serve_listen, (int)cfg->serve_threads, (int)cfg->serve_calls_per_method,
                             cfg->serve_max_message, cfg->serve_busy_poll_us, fd.metrics,
                             fd.auth ? grpc_authorize : NULL, tls.cert ? &tls : NULL};
    if (fd.auth)
        feat_log(FEAT_LOG_INFO, "featd", "bearer tokens required: %zu read, %zu admin", feat_auth_count(fd.auth, FEAT_AUTH_READ),
                 feat_auth_count(fd.auth, FEAT_AUTH_ADMIN));
    fd.grpc = feat_server_new(&gc, methods, nmethods, &fd, err, sizeof(err));
    feat_tls_pem_free(&tls); /* gRPC holds its own copy */
    if (!fd.grpc || feat_server_start(fd.grpc, err, sizeof(err))) {
        fprintf(stderr, "featd: %s\n", err);
        goto out;
    }
    fd.http = feat_http_new(base, &fd, cfg->admin_listen, err, sizeof(err));
    if (!fd.http) {
        fprintf(stderr, "featd: %s\n", err);
        goto out;
    }
    {
        /* where we listen, for tools and tests (ports may be chosen by the OS) */
        char addr[600], host[256];
        const char *c = strrchr(cfg->serve_listen, ':');
        snprintf(host, sizeof(host), "%.*s", (int)(c - cfg->serve_listen), cfg->serve_listen);
        const char *ac = strrchr(cfg->admin_listen, ':');
        int n = snprintf(addr, sizeof(addr), "{\"grpc\": \"%s:%d\", \"admin\": \"%.*s:%d\"}\n", host,
                         feat_server_port(fd.grpc), (int)(ac - cfg->admin_listen), cfg->admin_listen,
                         feat_http_port(fd.http));
        snprintf(path, sizeof(path), "%s/featd.addr", cfg->data_dir);
        if (feat_write_file_atomic(path, addr, (size_t)n))
            feat_log(FEAT_LOG_WARN, "featd", "cannot write %s", path);
    }
    lc.fd = &fd;
    lc.base = base;
    ev_int = evsignal_new(base, SIGINT, on_signal, &lc);
    ev_term = evsignal_new(base, SIGTERM, on_signal, &lc);
    ev_tick = event_new(base, -1, EV_PERSIST, on_tick, &lc);
    struct timeval tick = {0, 200000};
    event_add(ev_int, NULL);
    event_add(ev_term, NULL);
    event_add(ev_tick, &tick);
    feat_log(FEAT_LOG_INFO, "featd", "featd %s running: %zu table(s), %zu model(s), data in %s", FEATD_VERSION,
             cfg->ntables, cfg->nmodels, cfg->data_dir);
    event_base_dispatch(base);
    code = lc.exit_code;

out:
    /* reverse dependency order: serve, then ingest, then the store */
    atomic_store(&fd.shutting_down, 1);
    if (fd.grpc) feat_server_shutdown(fd.grpc, cfg->serve_shutdown_grace_ms);
    feat_http_destroy(fd.http);
    feat_demo_stop(fd.demo);
    feat_predlog_destroy(fd.predlog);       /* writes what serving logged */
    feat_ingest_stop(fd.ingest);
    if (fd.ingest) report_unapplied(&fd);
    feat_ingest_destroy(fd.ingest);
    feat_models_stop(fd.models);            /* cancels a run in progress */
    feat_drift_destroy(fd.drift);
    feat_models_destroy(fd.models);
    feat_producer_destroy(fd.producer);
    feat_alert_bus_destroy(alerts);
    feat_webhook_destroy(fd.webhook);
    feat_server_destroy(fd.grpc);
    if (fd.st) feat_store_set_write_hook(fd.st, NULL, NULL);
    feat_cache_destroy(fd.cache);
    feat_store_close(fd.st);
    feat_broker_destroy(fd.broker);
    if (ev_int) event_free(ev_int);
    if (ev_term) event_free(ev_term);
    if (ev_tick) event_free(ev_tick);
    if (base) event_base_free(base);
    free(fd.bootstrap);
    feat_tls_pem_free(&tls);
    feat_auth_destroy(fd.auth); /* after the servers that check tokens */
    feat_log(FEAT_LOG_INFO, "featd", "stopped (exit %d)", code);
    feat_config_free(cfg);
    return code;
}
