/* ingest/demo.c — see demo.h. */
#include "ingest/demo.h"
#include "ingest/kconf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/worker.h"
#include "featd/v1/event.pb-c.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct feat_demo {
    feat_demo_conf_t conf;
    rd_kafka_t *rk;           /* feature events: batches of DEMO_EVENT_LINGER_MS */
    rd_kafka_t *rk_labels;    /* labels: batches of DEMO_LABEL_LINGER_MS */
    pthread_t thr;
    int started;
    atomic_int stop;
    _Atomic uint64_t sent;
    uint64_t rng;
    /* demo.shift_after: from shift_at on, feature shift_f of table shift_t moves */
    const feat_table_conf_t *shift_t;
    int shift_f;
    uint64_t shift_at_ns;
    int shifting;
};

/* Shifted value of feature f of table t: +4 standard units after the shift. */
static double shifted(feat_demo_t *d, const feat_table_conf_t *t, size_t f, double x) {
    return d->shifting && t == d->shift_t && (int)f == d->shift_f ? x + 4.0 * (double)(f + 1) : x;
}

static uint64_t rnd(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static double unif(uint64_t *s) { return (double)(rnd(s) >> 11) / 9007199254740992.0; }
static double gauss(uint64_t *s) {
    double u = unif(s), v = unif(s);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* Latent score of an entity: fixed, from its key. */
static double latent(long e) {
    uint64_t h = feat_hash_mix(feat_hash64(&e, sizeof(e)));
    uint64_t s = h | 1;
    return gauss(&s);
}

static const char *const countries[] = {"US", "DE", "FR", "IN", "BR", "JP"};

/* How long librdkafka gathers records into one batch (a message set) per
 * partition.  The embedded broker (librdkafka 2.0.2's mock cluster) finds a
 * fetch's offset by walking a partition's message sets from the oldest, and
 * keeps up to 5 MiB of them: its CPU grows with (batches per second) x
 * (batches kept), so tiny batches (the 5 ms this once was: one record a
 * batch) had its thread at 100% of a core within minutes, the consumer fell
 * behind and the broker dropped records featd had not applied.  50 ms keeps
 * feature events fresh (a table's four partitions land a batch every ~12 ms)
 * and its thread at a few percent; labels need no freshness, and their
 * smaller records would otherwise be kept longest, so they wait longer.
 * tests/integration/test_readme_soak.py checks the result from /metrics. */
#define DEMO_EVENT_LINGER_MS "50"
#define DEMO_LABEL_LINGER_MS "250"

static void produce(feat_demo_t *d, rd_kafka_t *rk, const char *topic, const char *key, const void *val, size_t len,
                    int json) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    const char *ct = json ? "application/json" : "application/x-protobuf";
    rd_kafka_header_add(h, "content-type", -1, ct, -1);
    for (int tries = 0; tries < 100; tries++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                                  RD_KAFKA_V_VALUE((void *)val, len), RD_KAFKA_V_HEADERS(h),
                                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!e) {
            atomic_fetch_add(&d->sent, 1);
            return;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(rk, 10);
    }
    rd_kafka_headers_destroy(h);
}

static void one_event(feat_demo_t *d, const feat_table_conf_t *t, int64_t now) {
    uint64_t *s = &d->rng;
    long e = (long)(rnd(s) % (uint64_t)d->conf.entities);
    char key[32];
    snprintf(key, sizeof(key), "%s%ld", t->entity && strcmp(t->entity, "key") ? "" : "e", e);
    double z = latent(e);
    int64_t ts = now;
    if (unif(s) < 0.01) ts -= 1000 + (int64_t)(unif(s) * 30000); /* out of order */
    double bad = unif(s);
    if (bad < 0.002) { /* malformed, of several kinds */
        char buf[256];
        int kind = (int)(rnd(s) % 4);
        if (kind == 0) snprintf(buf, sizeof(buf), "{\"ts\": %lld, \"features\": {", (long long)ts);
        else if (kind == 1) snprintf(buf, sizeof(buf), "{\"ts\": %lld, \"features\": {\"no_such_feature\": 1}}", (long long)ts);
        else if (kind == 2) snprintf(buf, sizeof(buf), "{\"features\": {\"%s\": 1}}", t->features[0].name);
        else snprintf(buf, sizeof(buf), "{\"ts\": %lld, \"features\": {\"%s\": [1, 2]}}", (long long)ts, t->features[0].name);
        produce(d, d->rk, t->topic, key, buf, strlen(buf), 1);
        return;
    }
    int json = rnd(s) & 1;
    if (json) {
        char buf[4096];
        size_t o = (size_t)snprintf(buf, sizeof(buf), "{\"table\":\"%s\",\"ts\":%lld,\"features\":{", t->name, (long long)ts);
        for (size_t f = 0; f < t->nplain && o < sizeof(buf) - 128; f++) {
            const feat_feature_conf_t *fc = &t->features[f];
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s\"%s\":", f ? "," : "", fc->name);
            switch (fc->type) {
            case FEAT_FT_DOUBLE: o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%.6g", shifted(d, t, f, z * (double)(f + 1) + gauss(s))); break;
            case FEAT_FT_INT64: o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%lld", (long long)shifted(d, t, f, fmax(0, round(5 + 3 * z + gauss(s))))); break;
            case FEAT_FT_BOOL: o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s", z + gauss(s) > 0 ? "true" : "false"); break;
            default: o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\"%s\"", countries[(int)fmin(5, fmax(0, floor(z + 3)))]); break;
            }
        }
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "}}");
        produce(d, d->rk, t->topic, key, buf, o, 1);
        return;
    }
    Featd__V1__FeatureEvent ev = FEATD__V1__FEATURE_EVENT__INIT;
    Featd__V1__FeatureEvent__FeaturesEntry ents[32], *ptrs[32];
    Featd__V1__Value vals[32];
    size_t nf = t->nplain < 32 ? t->nplain : 32; /* aggregated features are not sent */
    ev.table = (char *)t->name;
    ev.key = "";
    ev.ts = ts;
    for (size_t f = 0; f < nf; f++) {
        featd__v1__feature_event__features_entry__init(&ents[f]);
        featd__v1__value__init(&vals[f]);
        const feat_feature_conf_t *fc = &t->features[f];
        ents[f].key = fc->name;
        ents[f].value = &vals[f];
        ptrs[f] = &ents[f];
        switch (fc->type) {
        case FEAT_FT_DOUBLE: vals[f].kind_case = FEATD__V1__VALUE__KIND_DOUBLE_VALUE; vals[f].double_value = shifted(d, t, f, z * (double)(f + 1) + gauss(s)); break;
        case FEAT_FT_INT64: vals[f].kind_case = FEATD__V1__VALUE__KIND_INT64_VALUE; vals[f].int64_value = (int64_t)shifted(d, t, f, fmax(0, round(5 + 3 * z + gauss(s)))); break;
        case FEAT_FT_BOOL: vals[f].kind_case = FEATD__V1__VALUE__KIND_BOOL_VALUE; vals[f].bool_value = z + gauss(s) > 0; break;
        default: vals[f].kind_case = FEATD__V1__VALUE__KIND_STRING_VALUE; vals[f].string_value = (char *)countries[(int)fmin(5, fmax(0, floor(z + 3)))]; break;
        }
    }
    ev.n_features = nf;
    ev.features = ptrs;
    uint8_t buf[4096];
    size_t n = featd__v1__feature_event__get_packed_size(&ev);
    if (n > sizeof(buf)) return;
    featd__v1__feature_event__pack(&ev, buf);
    produce(d, d->rk, t->topic, key, buf, n, 0);
}

static void one_label(feat_demo_t *d, const feat_model_conf_t *m, int64_t now) {
    uint64_t *s = &d->rng;
    const feat_table_conf_t *t = NULL;
    for (size_t i = 0; i < d->conf.ntables && !t; i++)
        if (!strcmp(d->conf.tables[i].name, m->table)) t = &d->conf.tables[i];
    long e = (long)(rnd(s) % (uint64_t)d->conf.entities);
    char key[32], buf[256];
    snprintf(key, sizeof(key), "%s%ld", t && t->entity && strcmp(t->entity, "key") ? "" : "e", e);
    double z = latent(e);
    double y;
    if (!feat_model_conf_binary(m)) y = 2.0 * z + 0.5 * gauss(s);
    else y = unif(s) < 1.0 / (1.0 + exp(-2.5 * z)) ? 1 : 0;
    int n = snprintf(buf, sizeof(buf), "{\"model\":\"%s\",\"ts\":%lld,\"label\":%.6g}", m->name, (long long)now, y);
    produce(d, d->rk_labels, m->label_topic, key, buf, (size_t)n, 1);
}

static void *run(void *arg) {
    feat_demo_t *d = arg;
    const feat_demo_conf_t *cfg = &d->conf;
    double per_tick = (double)cfg->rate / 100.0, carry = 0;
    uint64_t t0 = feat_mono_ns(), tick = 0;
    while (!atomic_load(&d->stop)) {
        int64_t now = feat_now_ms();
        if (d->shift_t && !d->shifting && feat_mono_ns() >= d->shift_at_ns) {
            d->shifting = 1;
            feat_log(FEAT_LOG_INFO, "demo", "shifting %s.%s by +4 standard units (demo.shift_after)", d->shift_t->name,
                     d->shift_t->features[d->shift_f].name);
        }
        carry += per_tick;
        int n = (int)carry;
        carry -= n;
        for (int i = 0; i < n; i++) {
            one_event(d, &cfg->tables[rnd(&d->rng) % cfg->ntables], now);
            /* one label per five events, for entities that have features */
            if (cfg->nmodels && rnd(&d->rng) % 5 == 0) one_label(d, &cfg->models[rnd(&d->rng) % cfg->nmodels], now);
        }
        rd_kafka_poll(d->rk, 0);
        rd_kafka_poll(d->rk_labels, 0);
        tick++;
        uint64_t due = t0 + tick * 10000000ull, now_ns = feat_mono_ns();
        if (due > now_ns) {
            struct timespec ts = {0, (long)(due - now_ns)};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static rd_kafka_t *new_producer(const feat_demo_conf_t *conf, const char *linger, char *errstr, size_t errlen) {
    const char *const set[] = {"linger.ms", linger, "queue.buffering.max.messages", "1000000", NULL};
    return feat_kafka_new(RD_KAFKA_PRODUCER,
                          &(feat_kafka_conf_t){.props = conf->kafka, .nprops = conf->nkafka, .bootstrap = conf->bootstrap,
                                               .set = set, .what = "demo"},
                          errstr, errlen);
}

feat_demo_t *feat_demo_new(const feat_demo_conf_t *conf, char *errstr, size_t errlen) {
    feat_demo_t *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(errstr, errlen, "demo: out of memory");
        return NULL;
    }
    d->conf = *conf;
    const feat_demo_conf_t *cfg = &d->conf;
    d->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)feat_now_ms();
    if (cfg->shift_after_ms > 0) {
        d->shift_f = -1;
        const char *sf = cfg->shift_feature;
        const char *dot = sf ? strchr(sf, '.') : NULL;
        for (size_t t = 0; t < cfg->ntables && d->shift_f < 0; t++) {
            const feat_table_conf_t *tc = &cfg->tables[t];
            if (dot && (strlen(tc->name) != (size_t)(dot - sf) || strncmp(tc->name, sf, (size_t)(dot - sf)))) continue;
            for (size_t f = 0; f < tc->nplain; f++) {
                int numeric = tc->features[f].type == FEAT_FT_DOUBLE || tc->features[f].type == FEAT_FT_INT64;
                if (dot ? !strcmp(tc->features[f].name, dot + 1) && numeric : numeric) {
                    d->shift_t = tc;
                    d->shift_f = (int)f;
                    break;
                }
            }
        }
        if (!d->shift_t) {
            snprintf(errstr, errlen, "demo.shift_feature: \"%s\" is not a numeric feature of a table", sf ? sf : "");
            free(d);
            return NULL;
        }
    }
    d->rk = new_producer(cfg, DEMO_EVENT_LINGER_MS, errstr, errlen);
    d->rk_labels = d->rk ? new_producer(cfg, DEMO_LABEL_LINGER_MS, errstr, errlen) : NULL;
    if (!d->rk_labels) {
        if (d->rk) rd_kafka_destroy(d->rk);
        free(d);
        return NULL;
    }
    return d;
}

feat_err_t feat_demo_start(feat_demo_t *d, char *errstr, size_t errlen) {
    if (d->shift_t) d->shift_at_ns = feat_mono_ns() + (uint64_t)d->conf.shift_after_ms * 1000000u;
    if (feat_worker_start(&d->thr, "demo", run, d) != FEAT_OK) {
        snprintf(errstr, errlen, "demo: cannot start thread");
        return FEAT_ERR_NOMEM;
    }
    d->started = 1;
    feat_log(FEAT_LOG_INFO, "demo", "demo producer: %lld events/s over %lld entities", (long long)d->conf.rate,
             (long long)d->conf.entities);
    return FEAT_OK;
}

uint64_t feat_demo_sent(const feat_demo_t *d) { return d ? atomic_load(&((feat_demo_t *)d)->sent) : 0; }

void feat_demo_stop(feat_demo_t *d) {
    if (!d || !d->started) return;
    atomic_store(&d->stop, 1);
    feat_worker_join(d->thr);
    d->started = 0;
    rd_kafka_flush(d->rk, 2000);
    rd_kafka_flush(d->rk_labels, 2000);
}

void feat_demo_destroy(feat_demo_t *d) {
    if (!d) return;
    feat_demo_stop(d);
    rd_kafka_destroy(d->rk);
    rd_kafka_destroy(d->rk_labels);
    free(d);
}
