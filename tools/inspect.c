/*
 * featd-inspect — dumps a featd store as JSON lines, read-only (safe beside
 * a running featd; it sees the store as of its start).
 *
 *   featd-inspect --config FILE [--data-dir DIR] [online|offline|labels|dead-letters|offsets|predictions|models]...
 *
 * With no section named, dumps them all.  "models" audits the model registry
 * (train/models.h: feat_models_audit) and exits 1 when it is inconsistent.  Used by the integration and crash
 * tests, and by operators checking a backup.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/config.h"
#include "store/row.h"
#include "store/store.h"
#include "train/models.h"

static feat_buf_t out;

static void flush_line(void) {
    feat_buf_putc(&out, '\n');
    fwrite(out.data, 1, out.len, stdout);
    feat_buf_reset(&out);
}

static void put_value(const feat_value_t *v) {
    switch (v->type) {
    case FEAT_FT_DOUBLE: {
        /* always a float literal: "-0" would read back as the integer 0 */
        char num[40];
        snprintf(num, sizeof(num), "%.17g", v->v.d);
        feat_buf_puts(&out, num);
        if (!strpbrk(num, ".eEn")) feat_buf_puts(&out, ".0");
        break;
    }
    case FEAT_FT_INT64: feat_buf_printf(&out, "%lld", (long long)v->v.i); break;
    case FEAT_FT_BOOL: feat_buf_puts(&out, v->v.b ? "true" : "false"); break;
    case FEAT_FT_STRING: feat_buf_json_str(&out, v->v.s, v->slen); break;
    default: feat_buf_puts(&out, "null"); break;
    }
}

static int on_online(void *arg, const feat_table_t *t, const char *key, size_t klen, const char *row, size_t len) {
    (void)arg;
    feat_buf_printf(&out, "{\"kind\":\"online\",\"table\":\"%s\",\"key\":", t->conf->name);
    feat_buf_json_str(&out, key, klen);
    feat_buf_puts(&out, ",\"features\":{");
    size_t pos = 0;
    feat_row_entry_t e;
    int has, first = 1;
    feat_err_t r;
    while ((r = feat_row_next(row, len, &pos, 1, &e, &has)) == FEAT_OK && has) {
        if (e.id > t->max_id || t->index_of_id[e.id] < 0) continue;
        feat_buf_printf(&out, "%s\"%s\":{\"value\":", first ? "" : ",", t->conf->features[t->index_of_id[e.id]].name);
        put_value(&e.val);
        feat_buf_printf(&out, ",\"ts\":%lld,\"partition\":%d,\"offset\":%lld}", (long long)e.ts, e.partition,
                        (long long)e.offset);
        first = 0;
    }
    feat_buf_printf(&out, "}%s}", r != FEAT_OK ? ",\"corrupt\":true" : "");
    flush_line();
    return 0;
}

static const feat_table_t *cur_table;

static int on_offline(void *arg, const char *key, size_t klen, int64_t ts, int32_t part, int64_t off,
                      const feat_value_t *vals, size_t n) {
    (void)arg;
    feat_buf_printf(&out, "{\"kind\":\"offline\",\"table\":\"%s\",\"key\":", cur_table->conf->name);
    feat_buf_json_str(&out, key, klen);
    feat_buf_printf(&out, ",\"ts\":%lld,\"partition\":%d,\"offset\":%lld,\"features\":{", (long long)ts, part,
                    (long long)off);
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (vals[i].status != FEAT_ST_PRESENT) continue;
        feat_buf_printf(&out, "%s\"%s\":", first ? "" : ",", cur_table->conf->features[i].name);
        put_value(&vals[i]);
        first = 0;
    }
    feat_buf_puts(&out, "}}");
    flush_line();
    return 0;
}

static int on_label(void *arg, const char *model, int64_t ts, const char *key, size_t klen, double label,
                    int32_t part, int64_t off) {
    (void)arg;
    feat_buf_printf(&out, "{\"kind\":\"label\",\"model\":\"%s\",\"key\":", model);
    feat_buf_json_str(&out, key, klen);
    feat_buf_printf(&out, ",\"ts\":%lld,\"label\":%.17g,\"partition\":%d,\"offset\":%lld}", (long long)ts, label,
                    part, (long long)off);
    flush_line();
    return 0;
}

static int on_dead(void *arg, const char *topic, int32_t part, int64_t off, const char *reason, const char *detail,
                   const char *key, size_t klen, const char *val, size_t vlen) {
    (void)arg;
    feat_buf_puts(&out, "{\"kind\":\"dead_letter\",\"topic\":");
    feat_buf_json_str(&out, topic, strlen(topic));
    feat_buf_printf(&out, ",\"partition\":%d,\"offset\":%lld,\"reason\":\"%s\",\"detail\":", part, (long long)off, reason);
    feat_buf_json_str(&out, detail, strlen(detail));
    /* raw bytes may be anything: hex, whole (dead letters are bounded by ingest.max_value_bytes) */
    feat_buf_puts(&out, ",\"key_hex\":\"");
    for (size_t i = 0; i < klen; i++) feat_buf_printf(&out, "%02x", (unsigned char)key[i]);
    feat_buf_puts(&out, "\",\"value_hex\":\"");
    for (size_t i = 0; i < vlen; i++) feat_buf_printf(&out, "%02x", (unsigned char)val[i]);
    feat_buf_puts(&out, "\"}");
    flush_line();
    return 0;
}

static int on_offset(void *arg, const char *topic, int32_t part, int64_t next, uint64_t applied) {
    (void)arg;
    feat_buf_puts(&out, "{\"kind\":\"offset\",\"topic\":");
    feat_buf_json_str(&out, topic, strlen(topic));
    feat_buf_printf(&out, ",\"partition\":%d,\"next\":%lld,\"applied\":%llu}", part, (long long)next,
                    (unsigned long long)applied);
    flush_line();
    return 0;
}

static const char *cur_model;

static int on_prediction(void *arg, int64_t ts, const char *key, size_t klen, uint64_t version, double score) {
    (void)arg;
    feat_buf_puts(&out, "{\"kind\":\"prediction\",\"model\":");
    feat_buf_json_str(&out, cur_model, strlen(cur_model));
    feat_buf_puts(&out, ",\"key\":");
    feat_buf_json_str(&out, key, klen);
    feat_buf_printf(&out, ",\"ts\":%lld,\"version\":%llu,\"score\":%.17g}", (long long)ts, (unsigned long long)version,
                    score);
    flush_line();
    return 0;
}

static void on_model_line(void *arg, const char *json, size_t len) {
    (void)arg;
    feat_buf_append(&out, json, len);
    flush_line();
}

#define NSECTIONS 7

int main(int argc, char **argv) {
    const char *cfg_path = NULL, *data_dir = NULL;
    int want[NSECTIONS] = {0}, any = 0;
    static const char *const names[NSECTIONS] = {"online", "offline", "labels", "dead-letters", "offsets",
                                                 "predictions", "models"};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) { cfg_path = argv[++i]; continue; }
        if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) { data_dir = argv[++i]; continue; }
        int k;
        for (k = 0; k < NSECTIONS; k++)
            if (!strcmp(argv[i], names[k])) break;
        if (k == NSECTIONS) {
            fprintf(stderr, "usage: featd-inspect --config FILE [--data-dir DIR] "
                            "[online|offline|labels|dead-letters|offsets|predictions|models]...\n");
            return 2;
        }
        want[k] = any = 1;
    }
    if (!cfg_path) {
        fprintf(stderr, "featd-inspect: --config FILE is required\n");
        return 2;
    }
    if (!any)
        for (int k = 0; k < NSECTIONS; k++) want[k] = 1;
    char err[512], path[4096];
    feat_config_t *cfg = feat_config_load(cfg_path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "featd-inspect: config: %s\n", err);
        return 2;
    }
    snprintf(path, sizeof(path), "%s/db", data_dir ? data_dir : cfg->data_dir);
    feat_store_conf_t sc = {.path = path, .tables = cfg->tables, .ntables = cfg->ntables,
                            .block_cache_bytes = 16 << 20, .write_buffer_bytes = 16 << 20, .read_only = 1};
    feat_store_t *st = feat_store_open(&sc, err, sizeof(err));
    if (!st) {
        fprintf(stderr, "featd-inspect: %s\n", err);
        feat_config_free(cfg);
        return 1;
    }
    int failed = 0; /* a scan returned an error */
    if (want[0]) failed |= feat_store_scan_online(st, on_online, NULL) != FEAT_OK;
    if (want[1])
        for (size_t t = 0; t < feat_store_ntables(st); t++) {
            cur_table = feat_store_table_at(st, t);
            failed |= feat_store_scan_offline(st, cur_table, on_offline, NULL) != FEAT_OK;
        }
    if (want[2]) failed |= feat_store_all_labels(st, on_label, NULL) != FEAT_OK;
    if (want[3]) failed |= feat_store_dead_letters(st, on_dead, NULL) != FEAT_OK;
    if (want[4]) failed |= feat_store_offsets(st, on_offset, NULL) != FEAT_OK;
    for (size_t m = 0; want[5] && m < cfg->nmodels; m++) {
        cur_model = cfg->models[m].name;
        failed |= feat_store_predictions(st, cur_model, INT64_MIN, INT64_MAX, on_prediction, NULL) != FEAT_OK;
    }
    feat_models_conf_t mconf;
    feat_models_conf_from_config(cfg, &mconf);
    int problems = want[6] ? feat_models_audit(st, &mconf, on_model_line, NULL) : 0;
    fflush(stdout);
    feat_buf_free(&out);
    feat_store_close(st);
    feat_config_free(cfg);
    if (failed) fprintf(stderr, "featd-inspect: the store has corrupt records\n");
    if (problems) fprintf(stderr, "featd-inspect: the model registry has %d problem(s)\n", problems);
    return failed || problems ? 1 : 0;
}
