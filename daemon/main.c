/*
 * daemon/main.c — featd's main: parse the arguments, load the config, open
 * the daemon (daemon/featd.h builds every part), run the event loop until
 * SIGINT or SIGTERM (or ingest stops), close the daemon.
 *
 *   featd --config FILE [--demo] [--set section.key=value]...
 *   featd --config FILE --check [--set section.key=value]...
 *   featd --version | --config-reference | --config-example
 *
 * Exit status: 0 after a clean stop, 1 on a runtime failure (store, broker),
 * 2 on bad arguments or configuration (one line naming the key): a config
 * that does not load, or featd_open's FEAT_ERR_CONFIG.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alert.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "daemon/featd.h"
#include "serve/status.h"

typedef struct loop_ctx {
    featd_t *d;
    struct event_base *base;
    int exit_code;
    uint64_t last_events;
    uint64_t last_ns;
    int64_t last_progress_ms;
} loop_ctx_t;

typedef struct args {
    const char *cfg_path;
    int demo, check_only;
    const char *sets[64];       /* --set, in order */
    int nsets;
} args_t;

static void usage(FILE *f) {
    fprintf(f, "usage: featd --config FILE [--demo] [--set section.key=value]...\n"
               "       featd --version\n"
               "       featd --config FILE --check   (validate the config and exit)\n"
               "       featd --config-reference | --config-example\n");
}

static void print_buf(void (*write_fn)(feat_buf_t *)) {
    feat_buf_t b = FEAT_BUF_INIT;
    write_fn(&b);
    fwrite(b.data, 1, b.len, stdout);
    feat_buf_free(&b);
}

/* The exit status for what featd_check or featd_open returned: 0 on
 * success, 2 for FEAT_ERR_CONFIG (the config is refused), 1 for any other
 * (runtime) failure. */
static int exit_status(feat_err_t rc) {
    return rc == FEAT_OK ? 0 : rc == FEAT_ERR_CONFIG ? 2 : 1;
}

/* Fills *a; returns -1 to go on, or the exit status (the commands that only
 * print, and bad arguments). */
static int parse_args(int argc, char **argv, args_t *a) {
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--version")) {
            printf("featd %s\n", FEATD_VERSION);
            return 0;
        } else if (!strcmp(arg, "--config-reference")) {
            print_buf(feat_config_reference);
            return 0;
        } else if (!strcmp(arg, "--config-example")) {
            print_buf(feat_config_example);
            return 0;
        } else if (!strcmp(arg, "--check")) {
            a->check_only = 1;
        } else if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(arg, "--config") && i + 1 < argc) {
            a->cfg_path = argv[++i];
        } else if (!strcmp(arg, "--demo")) {
            a->demo = 1;
        } else if (!strcmp(arg, "--set") && i + 1 < argc) {
            if (a->nsets == (int)(sizeof(a->sets) / sizeof(a->sets[0]))) {
                fprintf(stderr, "featd: --set %s: at most %d --set\n", argv[i + 1], a->nsets);
                return 2;
            }
            a->sets[a->nsets++] = argv[++i];
        } else {
            fprintf(stderr, "featd: unknown argument %s\n", arg);
            usage(stderr);
            return 2;
        }
    }
    if (!a->cfg_path) {
        fprintf(stderr, "featd: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

/* A signal handler only breaks the loop (libevent calls it from the loop);
 * featd_close marks the daemon not ready and stops it. */
static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    loop_ctx_t *lc = arg;
    feat_log(FEAT_LOG_INFO, "featd", "%s received; stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    event_base_loopbreak(lc->base);
}

static void progress(loop_ctx_t *lc) {
    featd_t *d = lc->d;
    feat_arena_t a;
    feat_arena_init(&a, 4096);
    feat_daemon_status_t s;
    feat_buf_t line = FEAT_BUF_INIT;
    if (feat_status_of_serve(&d->serve, &a, &s) == FEAT_OK) {
        uint64_t now_ns = feat_mono_ns(), seen = s.ingest.events + s.ingest.labels + s.ingest.dead_letters;
        double secs = lc->last_ns ? (double)(now_ns - lc->last_ns) / 1e9 : 0;
        double rate = secs > 0 ? (double)(seen - lc->last_events) / secs : 0;
        lc->last_events = seen;
        lc->last_ns = now_ns;
        feat_status_progress(&s, rate, &line);
    }
    if (line.len && !line.oom) feat_log(FEAT_LOG_INFO, "progress", "%.*s", (int)line.len, line.data);
    feat_buf_free(&line);
    feat_arena_free(&a);
}

static void on_tick(evutil_socket_t s, short what, void *arg) {
    (void)s; (void)what;
    loop_ctx_t *lc = arg;
    featd_t *d = lc->d;
    if (feat_ingest_refused(d->ingest)) { /* ingest logged the one line that says why */
        lc->exit_code = 2;
        event_base_loopbreak(lc->base);
        return;
    }
    if (feat_ingest_failed(d->ingest)) {
        feat_ingest_stats_t st;
        feat_ingest_get_stats(d->ingest, &st);
        feat_log(FEAT_LOG_ERROR, "featd", "ingest stopped: %s; shutting down", st.error);
        lc->exit_code = 1;
        event_base_loopbreak(lc->base);
        return;
    }
    int64_t now = feat_now_ms();
    if (d->cfg->progress_ms > 0 && now - lc->last_progress_ms >= d->cfg->progress_ms) {
        lc->last_progress_ms = now;
        progress(lc);
    }
}

/* Runs the loop until a signal or a failed ingest; the exit status. */
static int run(featd_t *d, struct event_base *base) {
    loop_ctx_t lc;
    memset(&lc, 0, sizeof(lc));
    lc.d = d;
    lc.base = base;
    struct event *ev_int = evsignal_new(base, SIGINT, on_signal, &lc);
    struct event *ev_term = evsignal_new(base, SIGTERM, on_signal, &lc);
    struct event *ev_tick = event_new(base, -1, EV_PERSIST, on_tick, &lc);
    if (!ev_int || !ev_term || !ev_tick) {
        fprintf(stderr, "featd: cannot create the event loop\n");
        lc.exit_code = 1;
    } else {
        struct timeval tick = {0, 200000};
        event_add(ev_int, NULL);
        event_add(ev_term, NULL);
        event_add(ev_tick, &tick);
        feat_log(FEAT_LOG_INFO, "featd", "featd %s running: %zu table(s), %zu model(s), data in %s", FEATD_VERSION,
                 d->cfg->ntables, d->cfg->nmodels, d->cfg->data_dir);
        event_base_dispatch(base);
    }
    if (ev_int) event_free(ev_int);
    if (ev_term) event_free(ev_term);
    if (ev_tick) event_free(ev_tick);
    return lc.exit_code;
}

int main(int argc, char **argv) {
    args_t a;
    int code = parse_args(argc, argv, &a);
    if (code >= 0) return code;
    char err[1024];
    /* --set is applied over the file before validation, so it may supply a
     * key the file lacks; a bad override is refused like a bad file */
    feat_config_t *cfg = feat_config_load_set(a.cfg_path, a.sets, (size_t)a.nsets, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "featd: config: %s\n", err);
        return 2;
    }
    if (a.check_only) {
        code = exit_status(featd_check(cfg, err, sizeof(err))); /* FEAT_OK or FEAT_ERR_CONFIG */
        if (code) fprintf(stderr, "featd: %s\n", err);
        else printf("featd: config %s is valid\n", a.cfg_path);
        feat_config_free(cfg);
        return code;
    }
    if (a.demo) cfg->demo_enabled = 1;
    feat_log_set_level((feat_log_level_t)cfg->log_level);
    if (cfg->log_file && *cfg->log_file && feat_log_set_file(cfg->log_file) != FEAT_OK) {
        fprintf(stderr, "featd: config: featd.log_file: cannot open %s: %s\n", cfg->log_file, strerror(errno));
        feat_config_free(cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads(); /* the webhook is fed from the drift thread */
    struct event_base *base = event_base_new();
    if (!base) {
        fprintf(stderr, "featd: cannot create the event loop\n");
        feat_config_free(cfg);
        return 1;
    }
    featd_opts_t opts = {.base = base};
    featd_t *d = NULL;
    feat_err_t rc = featd_open(cfg, &opts, &d, err, sizeof(err));
    if (rc) { /* one line and nothing more: a bad config names its key on the only line */
        fprintf(stderr, "featd: %s\n", err);
        code = exit_status(rc);
    } else {
        code = run(d, base);
        featd_close(d);
        feat_log(FEAT_LOG_INFO, "featd", "stopped (exit %d)", code);
    }
    event_base_free(base);
    feat_config_free(cfg);
    return code;
}
