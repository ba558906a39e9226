/*
 * featctl/featctl_models.c — featctl's model commands: models, promote,
 * import (a model trained elsewhere), rollback, retrain [--wait], predict and
 * score (batch prediction to CSV).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/timefmt.h"
#include "featd/v1/admin.pb-c.h"
#include "featd/v1/feature_service.pb-c.h"
#include "featctl/featctl.h"

#define AS "/featd.v1.AdminService/"
#define FS "/featd.v1.FeatureService/"

static void metric_text(const Featd__V1__ModelVersion *v, const Featd__V1__ModelMetrics *m, feat_buf_t *b) {
    if (!m) { feat_buf_puts(b, "-"); return; }
    if (!strcmp(v->task, "linreg") || !strcmp(v->task, "gbdt_regressor")) feat_buf_printf(b, "RMSE %.4g", m->rmse);
    else feat_buf_printf(b, "AUC %.4f", m->auc);
}

static void version_json(const Featd__V1__ModelVersion *v, feat_buf_t *b) {
    feat_buf_printf(b, "{\"model\":\"%s\",\"version\":%llu,\"stage\":\"%s\",\"task\":\"%s\",\"table\":\"%s\","
                       "\"created_ms\":%lld,\"trigger\":\"%s\",\"device\":\"%s\",\"train_seconds\":%.6g,"
                       "\"train_rows\":%llu,\"validation_rows\":%llu,\"data_from_ms\":%lld,\"data_to_ms\":%lld,"
                       "\"features\":[",
                    v->model, (unsigned long long)v->version, v->stage, v->task, v->table, (long long)v->created_ms,
                    v->trigger, v->device, v->train_seconds, (unsigned long long)v->train_rows,
                    (unsigned long long)v->validation_rows, (long long)v->data_from_ms, (long long)v->data_to_ms);
    for (size_t i = 0; i < v->n_features; i++) {
        if (i) feat_buf_putc(b, ',');
        feat_buf_json_str(b, v->features[i], strlen(v->features[i]));
    }
    feat_buf_printf(b, "],\"params\":%s,\"reason\":", *v->params_json ? v->params_json : "{}");
    feat_buf_json_str(b, v->reason, strlen(v->reason));
    const Featd__V1__ModelMetrics *ms[3] = {v->train_metrics, v->validation_metrics, v->live_metrics};
    const char *names[3] = {"train_metrics", "validation_metrics", "live_metrics"};
    if (v->live_metrics) feat_buf_printf(b, ",\"live_pairs\":%llu", (unsigned long long)v->live_pairs);
    for (int k = 0; k < 3; k++) {
        if (!ms[k]) continue;
        feat_buf_printf(b, ",\"%s\":{", names[k]);
        double x[5] = {ms[k]->auc, ms[k]->log_loss, ms[k]->accuracy, ms[k]->rmse, ms[k]->mae};
        const char *xn[5] = {"auc", "log_loss", "accuracy", "rmse", "mae"};
        int first = 1;
        for (int j = 0; j < 5; j++) {
            if (isnan(x[j])) continue;
            feat_buf_printf(b, "%s\"%s\":%.6g", first ? "" : ",", xn[j], x[j]);
            first = 0;
        }
        feat_buf_putc(b, '}');
    }
    feat_buf_putc(b, '}');
}

static Featd__V1__ListModelsResponse *list(const char *model) {
    Featd__V1__ListModelsRequest req = FEATD__V1__LIST_MODELS_REQUEST__INIT;
    req.model = (char *)(model ? model : "");
    feat_buf_t resp = FEAT_BUF_INIT;
    if (featctl_call(AS "ListModels", &req.base, &resp, "models")) return NULL;
    Featd__V1__ListModelsResponse *r =
        featd__v1__list_models_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) fprintf(stderr, "featctl: models: unreadable reply\n");
    return r;
}

static int models_import(int argc, char **argv);

int featctl_models(int argc, char **argv) {
    if (argc > 0 && !strcmp(argv[0], "import")) return models_import(argc - 1, argv + 1);
    Featd__V1__ListModelsResponse *r = list(argc > 0 ? argv[0] : NULL);
    if (!r) return 1;
    feat_buf_t out = FEAT_BUF_INIT;
    if (featctl_json) {
        feat_buf_puts(&out, "{\"versions\":[");
        for (size_t i = 0; i < r->n_versions; i++) {
            if (i) feat_buf_putc(&out, ',');
            version_json(r->versions[i], &out);
        }
        feat_buf_puts(&out, "]}\n");
        fwrite(out.data, 1, out.len, stdout);
    } else if (!r->n_versions) {
        printf("no model versions yet (train one: featctl retrain MODEL)\n");
    } else {
        char *hdr[] = {"MODEL", "VERSION", "STAGE", "TASK", "CREATED", "TRIGGER", "ROWS (TRAIN/VALID)", "VALIDATION",
                       "LIVE (PAIRS)", "DEVICE", "TRAIN TIME"};
        enum { NC = 11 };
        feat_buf_t *cells = calloc(NC * r->n_versions, sizeof(feat_buf_t));
        for (size_t i = 0; cells && i < r->n_versions; i++) {
            const Featd__V1__ModelVersion *v = r->versions[i];
            feat_buf_t *c = &cells[i * NC];
            char ts[40];
            feat_format_rfc3339(v->created_ms, ts, sizeof(ts));
            feat_buf_puts(&c[0], v->model);
            feat_buf_printf(&c[1], "%llu", (unsigned long long)v->version);
            feat_buf_puts(&c[2], v->stage);
            feat_buf_puts(&c[3], v->task);
            feat_buf_puts(&c[4], ts);
            feat_buf_puts(&c[5], v->trigger);
            feat_buf_printf(&c[6], "%llu/%llu", (unsigned long long)v->train_rows, (unsigned long long)v->validation_rows);
            metric_text(v, v->validation_metrics, &c[7]);
            metric_text(v, v->live_metrics, &c[8]);
            if (v->live_metrics) feat_buf_printf(&c[8], " (%llu)", (unsigned long long)v->live_pairs);
            feat_buf_puts(&c[9], v->device);
            char took[FEAT_DURATION_MAX];
            feat_buf_puts(&c[10], feat_format_duration((int64_t)(v->train_seconds * 1000.0), took, sizeof(took)));
        }
        if (cells) featctl_print_table(hdr, NC, cells, r->n_versions);
        for (size_t i = 0; cells && i < NC * r->n_versions; i++) feat_buf_free(&cells[i]);
        free(cells);
    }
    feat_buf_free(&out);
    featd__v1__list_models_response__free_unpacked(r, NULL);
    return 0;
}

static int print_champion(const char *what, const char *model, const Featd__V1__ModelVersion *v) {
    if (featctl_json) {
        feat_buf_t b = FEAT_BUF_INIT;
        feat_buf_puts(&b, "{\"champion\":");
        if (v) version_json(v, &b);
        else feat_buf_puts(&b, "null");
        feat_buf_puts(&b, "}\n");
        fwrite(b.data, 1, b.len, stdout);
        feat_buf_free(&b);
    } else if (v) {
        feat_buf_t m = FEAT_BUF_INIT;
        metric_text(v, v->validation_metrics, &m);
        printf("%s: %s v%llu is the champion (validation %.*s on %llu rows)\n", what, model,
               (unsigned long long)v->version, (int)m.len, m.data ? m.data : "", (unsigned long long)v->validation_rows);
        feat_buf_free(&m);
    }
    return 0;
}

static feat_err_t parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return FEAT_ERR_INVALID;
    *out = v;
    return FEAT_OK;
}

int featctl_promote(int argc, char **argv) {
    Featd__V1__PromoteRequest req = FEATD__V1__PROMOTE_REQUEST__INIT;
    if (argc < 1 || argc > 2 || (argc == 2 && parse_u64(argv[1], &req.version))) {
        featctl_usage(stderr);
        return 2;
    }
    req.model = argv[0];
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call(AS "Promote", &req.base, &resp, "promote");
    if (rc) return rc;
    Featd__V1__PromoteResponse *r = featd__v1__promote_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) return 1;
    print_champion("promoted", argv[0], r->champion);
    featd__v1__promote_response__free_unpacked(r, NULL);
    return 0;
}

int featctl_rollback(int argc, char **argv) {
    if (argc != 1) {
        featctl_usage(stderr);
        return 2;
    }
    Featd__V1__RollbackRequest req = FEATD__V1__ROLLBACK_REQUEST__INIT;
    req.model = argv[0];
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call(AS "Rollback", &req.base, &resp, "rollback");
    if (rc) return rc;
    Featd__V1__RollbackResponse *r = featd__v1__rollback_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) return 1;
    print_champion("rolled back", argv[0], r->champion);
    featd__v1__rollback_response__free_unpacked(r, NULL);
    return 0;
}

static Featd__V1__RetrainStatus *run_status(const char *model, uint64_t run_id) {
    Featd__V1__GetRetrainStatusRequest req = FEATD__V1__GET_RETRAIN_STATUS_REQUEST__INIT;
    req.model = (char *)model;
    req.run_id = run_id;
    feat_buf_t resp = FEAT_BUF_INIT;
    if (featctl_call(AS "GetRetrainStatus", &req.base, &resp, "retrain status")) return NULL;
    Featd__V1__RetrainStatus *r = featd__v1__retrain_status__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    return r;
}

/* "[##########..........]  50% training" on one terminal line. */
static void draw_bar(const char *model, uint64_t run, const Featd__V1__RetrainStatus *s, int tty, char *last, size_t cap) {
    int width = 30, fill = (int)(s->progress * width + 0.5);
    if (fill > width) fill = width;
    if (fill < 0) fill = 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    if (tty) {
        fprintf(stderr, "\r%s run %llu [%s] %3d%% %-24s", model, (unsigned long long)run, bar, (int)(s->progress * 100 + 0.5),
                s->phase);
        fflush(stderr);
    } else if (strcmp(last, s->phase)) { /* logs and pipes: one line per phase */
        fprintf(stderr, "%s run %llu [%s] %3d%% %s\n", model, (unsigned long long)run, bar, (int)(s->progress * 100 + 0.5),
                s->phase);
    }
    snprintf(last, cap, "%s", s->phase);
}

/* Follows run to its end with a progress bar on a terminal, then prints the
 * registered version (and the model's versions).  0 when it succeeded. */
static int wait_run(const char *model, uint64_t run, int coalesced, const char *what) {
    int tty = isatty(2);
    char last[64] = "";
    if (!featctl_json && coalesced) fprintf(stderr, "%s: joined run %llu, already queued or running\n", model, (unsigned long long)run);
    for (;;) {
        Featd__V1__RetrainStatus *s = run_status(model, run);
        if (!s) return 1;
        if (!featctl_json) draw_bar(model, run, s, tty, last, sizeof(last));
        int done = !strcmp(s->state, "succeeded") || !strcmp(s->state, "failed");
        if (done) {
            if (!featctl_json && tty) fputc('\n', stderr);
            int ok = !strcmp(s->state, "succeeded");
            if (featctl_json) {
                feat_buf_t b = FEAT_BUF_INIT;
                feat_buf_printf(&b, "{\"run_id\":%llu,\"state\":\"%s\",\"version\":%llu,\"error\":", (unsigned long long)run,
                                s->state, (unsigned long long)s->version);
                feat_buf_json_str(&b, s->error, strlen(s->error));
                feat_buf_puts(&b, "}\n");
                fwrite(b.data, 1, b.len, stdout);
                feat_buf_free(&b);
            } else if (ok) {
                printf("%s: run %llu succeeded: registered v%llu\n", model, (unsigned long long)run,
                       (unsigned long long)s->version);
            } else {
                fprintf(stderr, "featctl: %s: run %llu failed: %s\n", what, (unsigned long long)run, s->error);
            }
            featd__v1__retrain_status__free_unpacked(s, NULL);
            if (ok && !featctl_json) {
                char v[32];
                snprintf(v, sizeof(v), "%s", model);
                char *args[] = {v};
                featctl_models(1, args);
            }
            return ok ? 0 : 1;
        }
        featd__v1__retrain_status__free_unpacked(s, NULL);
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int featctl_retrain(int argc, char **argv) {
    const char *model = NULL, *reason = "featctl";
    int wait = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--wait")) wait = 1;
        else if (!strcmp(argv[i], "--reason") && i + 1 < argc) reason = argv[++i];
        else if (!model && argv[i][0] != '-') model = argv[i];
        else { featctl_usage(stderr); return 2; }
    }
    if (!model) { featctl_usage(stderr); return 2; }
    Featd__V1__TriggerRetrainRequest req = FEATD__V1__TRIGGER_RETRAIN_REQUEST__INIT;
    req.model = (char *)model;
    req.reason = (char *)reason;
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call(AS "TriggerRetrain", &req.base, &resp, "retrain");
    if (rc) return rc;
    Featd__V1__TriggerRetrainResponse *r =
        featd__v1__trigger_retrain_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) return 1;
    uint64_t run = r->run_id;
    int coalesced = r->coalesced;
    featd__v1__trigger_retrain_response__free_unpacked(r, NULL);
    if (!wait) {
        if (featctl_json) printf("{\"run_id\":%llu,\"coalesced\":%s}\n", (unsigned long long)run, coalesced ? "true" : "false");
        else printf("%s: retrain run %llu %s\n", model, (unsigned long long)run, coalesced ? "already queued or running (joined it)" : "queued");
        return 0;
    }
    return wait_run(model, run, coalesced, "retrain");
}

static void print_predictions(const Featd__V1__PredictResponse *r) {
    if (featctl_json) {
        feat_buf_t b = FEAT_BUF_INIT;
        feat_buf_printf(&b, "{\"model\":\"%s\",\"version\":%llu,\"predictions\":[", r->model, (unsigned long long)r->version);
        for (size_t i = 0; i < r->n_predictions; i++) {
            feat_buf_printf(&b, "%s{\"entity_key\":", i ? "," : "");
            feat_buf_json_str(&b, r->predictions[i]->entity_key, strlen(r->predictions[i]->entity_key));
            feat_buf_printf(&b, ",\"score\":%.17g,\"missing_features\":%u}", r->predictions[i]->score,
                            r->predictions[i]->missing_features);
        }
        feat_buf_puts(&b, "]}\n");
        fwrite(b.data, 1, b.len, stdout);
        feat_buf_free(&b);
        return;
    }
    printf("%s v%llu\n", r->model, (unsigned long long)r->version);
    char *hdr[] = {"ENTITY", "SCORE", "MISSING"};
    feat_buf_t *cells = calloc(3 * (r->n_predictions ? r->n_predictions : 1), sizeof(feat_buf_t));
    for (size_t i = 0; cells && i < r->n_predictions; i++) {
        feat_buf_puts(&cells[i * 3], r->predictions[i]->entity_key);
        feat_buf_printf(&cells[i * 3 + 1], "%.6f", r->predictions[i]->score);
        feat_buf_printf(&cells[i * 3 + 2], "%u", r->predictions[i]->missing_features);
    }
    if (cells) featctl_print_table(hdr, 3, cells, r->n_predictions);
    for (size_t i = 0; cells && i < 3 * r->n_predictions; i++) feat_buf_free(&cells[i]);
    free(cells);
}

static Featd__V1__PredictResponse *predict_call(Featd__V1__PredictRequest *req) {
    feat_buf_t resp = FEAT_BUF_INIT;
    if (featctl_call(FS "Predict", &req->base, &resp, "predict")) return NULL;
    Featd__V1__PredictResponse *r = featd__v1__predict_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    return r;
}

/* One --keys value, "ENTITY=KEY,ENTITY=KEY", into row (entries into ents,
 * strings into the writable copy s).  0, or -1 when an item is not
 * ENTITY=KEY with both non-empty. */
static int parse_entity_keys(char *s, Featd__V1__EntityKeys *row, Featd__V1__EntityKeys__KeysEntry *ents,
                             Featd__V1__EntityKeys__KeysEntry **ptrs, size_t cap) {
    featd__v1__entity_keys__init(row);
    row->keys = ptrs;
    for (char *item = strtok(s, ","); item; item = strtok(NULL, ",")) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1] || row->n_keys == cap) return -1;
        *eq = 0;
        featd__v1__entity_keys__keys_entry__init(&ents[row->n_keys]);
        ents[row->n_keys].key = item;
        ents[row->n_keys].value = eq + 1;
        ptrs[row->n_keys] = &ents[row->n_keys];
        row->n_keys++;
    }
    return row->n_keys ? 0 : -1;
}

int featctl_predict(int argc, char **argv) {
    Featd__V1__PredictRequest req = FEATD__V1__PREDICT_REQUEST__INIT;
    char **keys = calloc((size_t)argc + 1, sizeof(char *));
    /* --keys rows: at most argc, each at most 16 entities */
    Featd__V1__EntityKeys *rows = calloc((size_t)argc + 1, sizeof(*rows));
    Featd__V1__EntityKeys **rowp = calloc((size_t)argc + 1, sizeof(*rowp));
    Featd__V1__EntityKeys__KeysEntry *ents = calloc(16 * ((size_t)argc + 1), sizeof(*ents));
    Featd__V1__EntityKeys__KeysEntry **entp = calloc(16 * ((size_t)argc + 1), sizeof(*entp));
    char **copies = calloc((size_t)argc + 1, sizeof(char *));
    size_t nk = 0, nr = 0;
    int bad = !keys || !rows || !rowp || !ents || !entp || !copies;
    for (int i = 0; i < argc && !bad; i++) {
        if (!strcmp(argv[i], "--alias") && i + 1 < argc) req.alias = argv[++i];
        else if (!strcmp(argv[i], "--version") && i + 1 < argc) {
            if (parse_u64(argv[++i], &req.version)) bad = 1;
        } else if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
            copies[nr] = strdup(argv[++i]);
            if (!copies[nr] || parse_entity_keys(copies[nr], &rows[nr], ents + 16 * nr, entp + 16 * nr, 16)) {
                fprintf(stderr, "featctl: predict: --keys \"%s\" is not ENTITY=KEY[,ENTITY=KEY...]\n", argv[i]);
                bad = 1;
            }
            rowp[nr] = &rows[nr];
            nr++;
        } else if (!*req.model) req.model = argv[i];
        else keys[nk++] = argv[i];
    }
    if (bad || !*req.model || (!nk && !nr) || (nk && nr)) { /* KEY... or --keys rows, not both */
        free(keys);
        for (size_t k = 0; copies && k < nr; k++) free(copies[k]);
        free(copies); free(rows); free(rowp); free(ents); free(entp);
        featctl_usage(stderr);
        return 2;
    }
    req.n_entity_keys = nk;
    req.entity_keys = keys;
    req.n_entity_rows = nr;
    req.entity_rows = rowp;
    Featd__V1__PredictResponse *r = predict_call(&req);
    free(keys);
    for (size_t k = 0; k < nr; k++) free(copies[k]);
    free(copies); free(rows); free(rowp); free(ents); free(entp);
    if (!r) return 1;
    print_predictions(r);
    featd__v1__predict_response__free_unpacked(r, NULL);
    return 0;
}

/* ---- score: batch prediction as of a time ------------------------------------------------------ */

typedef struct score_ctx {
    Featd__V1__HistoricalRow **rows;
    size_t n, cap;
} score_ctx_t;

static int on_row(void *arg, const uint8_t *data, size_t len) {
    score_ctx_t *c = arg;
    Featd__V1__HistoricalRow *row = featd__v1__historical_row__unpack(NULL, len, data);
    if (!row) return 1;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 256;
        Featd__V1__HistoricalRow **nr = realloc(c->rows, nc * sizeof(*nr));
        if (!nr) { featd__v1__historical_row__free_unpacked(row, NULL); return 1; }
        c->rows = nr;
        c->cap = nc;
    }
    c->rows[c->n++] = row;
    return 0;
}

/* The tables a version reads: its own (features named plainly) and others
 * (TABLE.FEATURE), each with the positions of its features in v->features. */
typedef struct score_table {
    char name[128];
    size_t nf;
    size_t *pos;        /* [nf] index into v->features */
    char **names;       /* [nf] the feature names within the table */
    score_ctx_t rows;
} score_table_t;

/* Groups v's features by table; featctl score sends one set of keys, so
 * every table must be keyed by the model table's entity (ListTables says). */
static int score_tables(const Featd__V1__ModelVersion *v, score_table_t **out, size_t *nout) {
    size_t nf = v->n_features, nt = 0;
    score_table_t *tt = calloc(nf + 1, sizeof(*tt));
    if (!tt) return 1;
    for (size_t j = 0; j < nf; j++) {
        const char *f = v->features[j], *dot = strchr(f, '.');
        char tn[128];
        snprintf(tn, sizeof(tn), "%.*s", dot ? (int)(dot - f) : (int)strlen(v->table), dot ? f : v->table);
        size_t g = 0;
        while (g < nt && strcmp(tt[g].name, tn)) g++;
        if (g == nt) {
            snprintf(tt[nt].name, sizeof(tt[nt].name), "%s", tn);
            tt[nt].pos = calloc(nf, sizeof(size_t));
            tt[nt].names = calloc(nf, sizeof(char *));
            if (!tt[nt].pos || !tt[nt].names) { *out = tt; *nout = nt + 1; return 1; }
            nt++;
        }
        tt[g].pos[tt[g].nf] = j;
        tt[g].names[tt[g].nf++] = (char *)(dot ? dot + 1 : f);
    }
    *out = tt;
    *nout = nt;
    if (nt < 2) return 0;
    Featd__V1__ListTablesRequest req = FEATD__V1__LIST_TABLES_REQUEST__INIT;
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call("/featd.v1.AdminService/ListTables", &req.base, &resp, "score: tables");
    if (rc) return rc;
    Featd__V1__ListTablesResponse *r = featd__v1__list_tables_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) return 1;
    const char *own = NULL;
    for (size_t i = 0; i < r->n_tables; i++)
        if (!strcmp(r->tables[i]->name, v->table)) own = r->tables[i]->entity;
    for (size_t g = 0; own && !rc && g < nt; g++) {
        for (size_t i = 0; i < r->n_tables; i++) {
            if (strcmp(r->tables[i]->name, tt[g].name) || !strcmp(r->tables[i]->entity, own)) continue;
            fprintf(stderr, "featctl: score: model reads table %s, keyed by %s; score takes %s keys only\n",
                    tt[g].name, r->tables[i]->entity, own);
            rc = 1;
        }
    }
    featd__v1__list_tables_response__free_unpacked(r, NULL);
    return rc;
}

static void score_tables_free(score_table_t *tt, size_t nt) {
    for (size_t g = 0; tt && g < nt; g++) {
        free(tt[g].pos);
        free(tt[g].names);
        for (size_t i = 0; i < tt[g].rows.n; i++) featd__v1__historical_row__free_unpacked(tt[g].rows.rows[i], NULL);
        free(tt[g].rows.rows);
    }
    free(tt);
}

/* Scores keys[0..n) as of at with version v; appends CSV lines to out.
 * Each table the version reads is read point in time at `at` (one
 * GetHistoricalFeatures per table), then the rows go to Predict. */
static int score_chunk(const char *model, const Featd__V1__ModelVersion *v, char **keys, size_t n, int64_t at,
                       FILE *out, uint64_t *missing_total) {
    score_table_t *tt = NULL;
    size_t nt = 0;
    int rc = score_tables(v, &tt, &nt);
    Featd__V1__EntityTime *et = calloc(n, sizeof(*et));
    Featd__V1__EntityTime **etp = calloc(n, sizeof(*etp));
    if (!et || !etp) rc = 1;
    for (size_t i = 0; !rc && i < n; i++) {
        featd__v1__entity_time__init(&et[i]);
        et[i].entity_key = keys[i];
        et[i].ts_ms = at;
        etp[i] = &et[i];
    }
    for (size_t g = 0; !rc && g < nt; g++) {
        Featd__V1__GetHistoricalFeaturesRequest hreq = FEATD__V1__GET_HISTORICAL_FEATURES_REQUEST__INIT;
        hreq.table = tt[g].name;
        hreq.n_rows = n;
        hreq.rows = etp;
        hreq.n_features = tt[g].nf;
        hreq.features = tt[g].names;
        size_t len = protobuf_c_message_get_packed_size(&hreq.base);
        uint8_t *buf = malloc(len + 1);
        char msg[512];
        int code = buf ? (protobuf_c_message_pack(&hreq.base, buf),
                          feat_client_stream(featctl_cli, FS "GetHistoricalFeatures", buf, len, on_row, &tt[g].rows,
                                             featctl_timeout_ms, msg, sizeof(msg)))
                       : 8;
        free(buf);
        if (code) rc = featctl_fail_call("score: reading features", code, msg);
        else if (tt[g].rows.n != n) {
            fprintf(stderr, "featctl: score: asked for %zu rows of %s, got %zu\n", n, tt[g].name, tt[g].rows.n);
            rc = 1;
        }
    }
    free(et);
    free(etp);
    /* raw rows: PRESENT values only (the rest are missing, as when serving) */
    size_t nf = v->n_features;
    Featd__V1__RawRow *raw = rc ? NULL : calloc(n, sizeof(*raw));
    Featd__V1__RawRow **rawp = rc ? NULL : calloc(n, sizeof(*rawp));
    Featd__V1__RawRow__FeaturesEntry *ents = rc ? NULL : calloc(n * nf + 1, sizeof(*ents));
    Featd__V1__RawRow__FeaturesEntry **entp = rc ? NULL : calloc(n * nf + 1, sizeof(*entp));
    if (!rc && (!raw || !rawp || !ents || !entp)) rc = 1;
    for (size_t i = 0; !rc && i < n; i++) {
        featd__v1__raw_row__init(&raw[i]);
        raw[i].entity_key = keys[i];
        raw[i].features = entp + i * nf;
        for (size_t g = 0; g < nt; g++) {
            const Featd__V1__HistoricalRow *row = tt[g].rows.rows[i];
            for (size_t j = 0; j < tt[g].nf && j < row->n_values; j++) {
                const Featd__V1__FeatureValue *fv = row->values[j];
                if (!fv || fv->status != FEATD__V1__FEATURE_STATUS__PRESENT || !fv->value) continue;
                Featd__V1__RawRow__FeaturesEntry *e = &ents[i * nf + raw[i].n_features];
                featd__v1__raw_row__features_entry__init(e);
                e->key = v->features[tt[g].pos[j]];
                e->value = fv->value;
                raw[i].features[raw[i].n_features++] = e;
            }
        }
        rawp[i] = &raw[i];
    }
    if (!rc) {
        Featd__V1__PredictRequest req = FEATD__V1__PREDICT_REQUEST__INIT;
        req.model = (char *)model;
        req.version = v->version;
        req.n_rows = n;
        req.rows = rawp;
        req.batch = 1;
        Featd__V1__PredictResponse *r = predict_call(&req);
        if (!r) rc = 1;
        else {
            for (size_t i = 0; i < r->n_predictions; i++) {
                const Featd__V1__Prediction *p = r->predictions[i];
                /* keys are quoted when they hold a comma, quote or newline (RFC 4180) */
                if (strpbrk(p->entity_key, ",\"\r\n")) {
                    fputc('"', out);
                    for (const char *k = p->entity_key; *k; k++) {
                        if (*k == '"') fputc('"', out);
                        fputc(*k, out);
                    }
                    fputc('"', out);
                } else {
                    fputs(p->entity_key, out);
                }
                fprintf(out, ",%lld,%.17g,%u,%llu\n", (long long)at, p->score, p->missing_features,
                        (unsigned long long)r->version);
                *missing_total += p->missing_features;
            }
            featd__v1__predict_response__free_unpacked(r, NULL);
        }
    }
    free(raw);
    free(rawp);
    free(ents);
    free(entp);
    score_tables_free(tt, nt);
    return rc;
}

int featctl_score(int argc, char **argv) {
    const char *model = NULL, *keys_file = NULL, *out_path = NULL, *alias = "champion", *at_s = NULL;
    uint64_t version = 0;
    size_t chunk = 500;
    char **keys = calloc((size_t)argc + 1, sizeof(char *));
    size_t nk = 0, capk = (size_t)argc + 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--at") && i + 1 < argc) at_s = argv[++i];
        else if (!strcmp(a, "--keys-file") && i + 1 < argc) keys_file = argv[++i];
        else if (!strcmp(a, "--out") && i + 1 < argc) out_path = argv[++i];
        else if (!strcmp(a, "--alias") && i + 1 < argc) alias = argv[++i];
        else if (!strcmp(a, "--version") && i + 1 < argc) {
            if (parse_u64(argv[++i], &version)) goto bad;
        } else if (!strcmp(a, "--chunk") && i + 1 < argc) {
            chunk = (size_t)atol(argv[++i]);
            if (!chunk) goto bad;
        } else if (a[0] == '-' && a[1]) goto bad;
        else if (!model) model = a;
        else keys[nk++] = argv[i];
    }
    if (!model || !at_s) goto bad;
    int64_t at;
    char *end;
    errno = 0;
    long long atv = strtoll(at_s, &end, 10);
    if (!errno && *end == 0 && end != at_s) at = atv;
    else if (feat_parse_rfc3339(at_s, strlen(at_s), &at) != FEAT_OK) {
        fprintf(stderr, "featctl: score: --at \"%s\" is not ms since the epoch or RFC 3339\n", at_s);
        free(keys);
        return 2;
    }
    size_t nargs = nk; /* keys[nargs..] are strdup'd from the file */
    if (keys_file) {
        FILE *f = strcmp(keys_file, "-") ? fopen(keys_file, "r") : stdin;
        if (!f) {
            fprintf(stderr, "featctl: score: cannot open %s: %s\n", keys_file, strerror(errno));
            free(keys);
            return 2;
        }
        char line[4096];
        while (fgets(line, sizeof(line), f)) {
            line[strcspn(line, "\r\n")] = 0;
            if (!line[0]) continue;
            if (nk == capk) {
                capk *= 2;
                char **nkeys = realloc(keys, capk * sizeof(char *));
                if (!nkeys) break;
                keys = nkeys;
            }
            if (!(keys[nk] = strdup(line))) break;
            nk++;
        }
        if (f != stdin) fclose(f);
    }
    int rc = 0;
    if (!nk) {
        fprintf(stderr, "featctl: score: no entity keys (give KEY... or --keys-file)\n");
        rc = 2;
    }
    /* the version: pinned, so every chunk is scored by the same one */
    Featd__V1__ListModelsResponse *lr = rc ? NULL : list(model);
    const Featd__V1__ModelVersion *v = NULL;
    if (!rc && !lr) rc = 1;
    for (size_t i = 0; lr && i < lr->n_versions && !v; i++) {
        const Featd__V1__ModelVersion *x = lr->versions[i];
        if (version ? x->version == version : !strcmp(x->stage, alias)) v = x;
    }
    if (lr && !v) {
        if (version) fprintf(stderr, "featctl: score: model %s has no version %llu\n", model, (unsigned long long)version);
        else fprintf(stderr, "featctl: score: model %s has no %s\n", model, alias);
        rc = 1;
    }
    FILE *out = stdout;
    if (!rc && out_path && !(out = fopen(out_path, "w"))) {
        fprintf(stderr, "featctl: score: cannot write %s: %s\n", out_path, strerror(errno));
        rc = 1;
        out = stdout;
    }
    uint64_t missing = 0;
    if (!rc) {
        fprintf(out, "entity_key,as_of_ms,score,missing_features,version\n");
        for (size_t i = 0; !rc && i < nk; i += chunk)
            rc = score_chunk(model, v, keys + i, nk - i < chunk ? nk - i : chunk, at, out, &missing);
    }
    if (out != stdout && fclose(out) && !rc) {
        fprintf(stderr, "featctl: score: writing %s failed\n", out_path);
        rc = 1;
    }
    if (!rc && out_path)
        fprintf(stderr, "featctl: scored %zu entities with %s v%llu as of %s into %s (%llu missing feature values)\n", nk,
                model, (unsigned long long)v->version, at_s, out_path, (unsigned long long)missing);
    if (lr) featd__v1__list_models_response__free_unpacked(lr, NULL);
    for (size_t i = nargs; i < nk; i++) free(keys[i]);
    free(keys);
    return rc;
bad:
    free(keys);
    featctl_usage(stderr);
    return 2;
}

/* models import MODEL FILE --format xgboost-json [--features A,B,...] [--no-wait] */
static int models_import(int argc, char **argv) {
    const char *model = NULL, *path = NULL, *format = NULL, *features = NULL;
    int wait = 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) format = argv[++i];
        else if (!strcmp(argv[i], "--features") && i + 1 < argc) features = argv[++i];
        else if (!strcmp(argv[i], "--no-wait")) wait = 0;
        else if (!model && argv[i][0] != '-') model = argv[i];
        else if (!path && argv[i][0] != '-') path = argv[i];
        else { featctl_usage(stderr); return 2; }
    }
    if (!model || !path) { featctl_usage(stderr); return 2; }
    if (!format || strcmp(format, "xgboost-json")) {
        fprintf(stderr, "featctl: models import: --format xgboost-json is required (the one format featd reads)\n");
        return 2;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "featctl: models import: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    feat_buf_t data = FEAT_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) feat_buf_append(&data, chunk, n);
    int bad = ferror(f) || data.oom;
    fclose(f);
    if (bad) {
        fprintf(stderr, "featctl: models import: cannot read %s\n", path);
        feat_buf_free(&data);
        return 1;
    }
    char *list = features ? strdup(features) : NULL, *names[4096];
    size_t nn = 0;
    for (char *save = NULL, *t = list ? strtok_r(list, ",", &save) : NULL; t && nn < 4096; t = strtok_r(NULL, ",", &save))
        names[nn++] = t;
    const char *base = strrchr(path, '/');
    Featd__V1__ImportModelRequest req = FEATD__V1__IMPORT_MODEL_REQUEST__INIT;
    req.model = (char *)model;
    req.format = (char *)format;
    req.data.data = (uint8_t *)data.data;
    req.data.len = data.len;
    req.features = names;
    req.n_features = nn;
    req.source = (char *)(base ? base + 1 : path);
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call(AS "ImportModel", &req.base, &resp, "models import");
    feat_buf_free(&data);
    free(list);
    if (rc) return rc;
    Featd__V1__ImportModelResponse *r = featd__v1__import_model_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) return 1;
    uint64_t run = r->run_id;
    featd__v1__import_model_response__free_unpacked(r, NULL);
    if (!wait) {
        if (featctl_json) printf("{\"run_id\":%llu}\n", (unsigned long long)run);
        else printf("%s: import run %llu queued\n", model, (unsigned long long)run);
        return 0;
    }
    return wait_run(model, run, 0, "models import");
}
