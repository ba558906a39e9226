/*
 * featctl/featctl_export.c — featctl export: a point-in-time training set to
 * CSV or JSON Lines (AdminService.ExportTrainingSet).
 *
 *   featctl export (--model MODEL | --table TABLE) [--from TIME] [--to TIME]
 *                  [--format csv|jsonl] [--out FILE]
 *
 * Each message of the stream (512 rows) is written as it arrives, so memory
 * stays bounded whatever the set's size; on a terminal a progress bar on
 * stderr counts the rows against the total the first message announces.
 * CSV: a header (key, ts, label for a model, then the features), a missing
 * value an empty field, an empty string "", strings quoted when they must be
 * (RFC 4180).  JSON Lines: one
 * object per row, {"key", "ts", "label" (a model's), "features": {name:
 * value or null}}.  Doubles are written with 17 significant digits, so they
 * read back to the same bits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timefmt.h"
#include "featd/v1/admin.pb-c.h"
#include "featctl/featctl.h"

typedef struct export_ctx {
    FILE *out;
    int jsonl, model, tty;
    char **names;
    size_t nf;
    uint64_t total, done;
    int bar;                    /* last percent drawn */
    int write_failed;
    feat_buf_t line;
} export_ctx_t;

static void csv_field(feat_buf_t *b, const char *s, size_t n) {
    if (!n) { /* an empty string, not a missing value (an empty field) */
        feat_buf_puts(b, "\"\"");
        return;
    }
    if ((!memchr(s, ',', n) && !memchr(s, '"', n) && !memchr(s, '\n', n) && !memchr(s, '\r', n) &&
               s[0] != ' ' && s[n - 1] != ' ')) {
        feat_buf_append(b, s, n);
        return;
    }
    feat_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') feat_buf_putc(b, '"');
        feat_buf_putc(b, s[i]);
    }
    feat_buf_putc(b, '"');
}

static void value_text(feat_buf_t *b, const Featd__V1__Value *v, int jsonl) {
    switch (v ? v->kind_case : FEATD__V1__VALUE__KIND__NOT_SET) {
    case FEATD__V1__VALUE__KIND_DOUBLE_VALUE: feat_buf_printf(b, "%.17g", v->double_value); break;
    case FEATD__V1__VALUE__KIND_INT64_VALUE: feat_buf_printf(b, "%lld", (long long)v->int64_value); break;
    case FEATD__V1__VALUE__KIND_BOOL_VALUE: feat_buf_puts(b, v->bool_value ? "true" : "false"); break;
    case FEATD__V1__VALUE__KIND_STRING_VALUE:
        if (jsonl) feat_buf_json_str(b, v->string_value, strlen(v->string_value));
        else csv_field(b, v->string_value, strlen(v->string_value));
        break;
    default:
        if (jsonl) feat_buf_puts(b, "null");
        break;
    }
}

static void progress(export_ctx_t *c, int final) {
    if (!c->tty || !c->total) return;
    int pct = (int)(100 * c->done / c->total);
    if (pct == c->bar && !final) return;
    c->bar = pct;
    char bar[31];
    for (int i = 0; i < 30; i++) bar[i] = i < pct * 30 / 100 ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\rexport [%s] %3d%% %llu/%llu rows", bar, pct, (unsigned long long)c->done,
            (unsigned long long)c->total);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

static int on_rows(void *arg, const uint8_t *data, size_t len) {
    export_ctx_t *c = arg;
    Featd__V1__TrainingRows *m = featd__v1__training_rows__unpack(NULL, len, data);
    if (!m) return 1;
    if (m->n_features && !c->names) { /* the first message */
        c->nf = m->n_features;
        c->total = m->total_rows;
        c->names = calloc(c->nf, sizeof(char *));
        for (size_t j = 0; c->names && j < c->nf; j++)
            if (!(c->names[j] = strdup(m->features[j]))) c->write_failed = 1;
        if (!c->names) c->write_failed = 1;
        if (c->write_failed) {
            featd__v1__training_rows__free_unpacked(m, NULL);
            return 1;
        }
        if (!c->jsonl) {
            feat_buf_t *b = &c->line;
            feat_buf_reset(b);
            feat_buf_puts(b, c->model ? "key,ts,label" : "key,ts");
            for (size_t j = 0; j < c->nf; j++) {
                feat_buf_putc(b, ',');
                csv_field(b, m->features[j], strlen(m->features[j]));
            }
            feat_buf_putc(b, '\n');
            if (fwrite(b->data, 1, b->len, c->out) != b->len) c->write_failed = 1;
        }
    }
    for (size_t i = 0; i < m->n_rows && !c->write_failed; i++) {
        const Featd__V1__TrainingRow *r = m->rows[i];
        feat_buf_t *b = &c->line;
        feat_buf_reset(b);
        if (c->jsonl) {
            feat_buf_puts(b, "{\"key\":");
            feat_buf_json_str(b, r->entity_key, strlen(r->entity_key));
            feat_buf_printf(b, ",\"ts\":%lld", (long long)r->ts_ms);
            if (c->model) feat_buf_printf(b, ",\"label\":%.17g", r->label);
            feat_buf_puts(b, ",\"features\":{");
            for (size_t j = 0; j < c->nf; j++) {
                if (j) feat_buf_putc(b, ',');
                feat_buf_json_str(b, c->names[j], strlen(c->names[j]));
                feat_buf_putc(b, ':');
                value_text(b, j < r->n_values ? r->values[j] : NULL, 1);
            }
            feat_buf_puts(b, "}}\n");
        } else {
            csv_field(b, r->entity_key, strlen(r->entity_key));
            feat_buf_printf(b, ",%lld", (long long)r->ts_ms);
            if (c->model) feat_buf_printf(b, ",%.17g", r->label);
            for (size_t j = 0; j < c->nf; j++) { /* a short row still fills every column */
                feat_buf_putc(b, ',');
                value_text(b, j < r->n_values ? r->values[j] : NULL, 0);
            }
            feat_buf_putc(b, '\n');
        }
        if (b->oom || fwrite(b->data, 1, b->len, c->out) != b->len) c->write_failed = 1;
        c->done++;
    }
    featd__v1__training_rows__free_unpacked(m, NULL);
    progress(c, 0);
    return c->write_failed;
}

static int parse_time(const char *what, const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!errno && *end == 0 && end != s) {
        *out = v;
        return 0;
    }
    if (feat_parse_rfc3339(s, strlen(s), out) == FEAT_OK) return 0;
    fprintf(stderr, "featctl: export: %s \"%s\" is not ms since the epoch or RFC 3339\n", what, s);
    return 2;
}

int featctl_export(int argc, char **argv) {
    const char *model = NULL, *table = NULL, *format = "csv", *path = NULL;
    int64_t from = 0, to = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { featctl_usage(stderr); return 2; }
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--table")) table = v;
        else if (!strcmp(a, "--format")) format = v;
        else if (!strcmp(a, "--out")) path = v;
        else if (!strcmp(a, "--from")) { if (parse_time("--from", v, &from)) return 2; }
        else if (!strcmp(a, "--to")) { if (parse_time("--to", v, &to)) return 2; }
        else { featctl_usage(stderr); return 2; }
    }
    if (!model == !table || (strcmp(format, "csv") && strcmp(format, "jsonl"))) {
        fprintf(stderr, "featctl: export: give --model or --table, and --format csv or jsonl\n");
        return 2;
    }
    export_ctx_t c;
    memset(&c, 0, sizeof(c));
    c.jsonl = !strcmp(format, "jsonl");
    c.model = model != NULL;
    c.bar = -1;
    c.out = path && strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!c.out) {
        fprintf(stderr, "featctl: export: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    c.tty = isatty(2);
    Featd__V1__ExportTrainingSetRequest req = FEATD__V1__EXPORT_TRAINING_SET_REQUEST__INIT;
    req.model = (char *)(model ? model : "");
    req.table = (char *)(table ? table : "");
    req.from_ms = from;
    req.to_ms = to;
    size_t len = featd__v1__export_training_set_request__get_packed_size(&req);
    uint8_t *buf = malloc(len + 1);
    if (!buf) {
        fprintf(stderr, "featctl: export: out of memory\n");
        return 1;
    }
    featd__v1__export_training_set_request__pack(&req, buf);
    char msg[512];
    int code = feat_client_stream(featctl_cli, "/featd.v1.AdminService/ExportTrainingSet", buf, len, on_rows, &c,
                                  featctl_timeout_ms, msg, sizeof(msg));
    free(buf);
    progress(&c, 1);
    int rc = 0;
    if (c.write_failed) {
        fprintf(stderr, "featctl: export: writing %s failed: %s\n", path ? path : "stdout", strerror(errno));
        rc = 1;
    } else if (code) {
        rc = featctl_fail_call("export", code, msg);
    }
    if (c.out != stdout && fclose(c.out) != 0 && !rc) {
        fprintf(stderr, "featctl: export: writing %s failed: %s\n", path, strerror(errno));
        rc = 1;
    }
    if (!rc && path && strcmp(path, "-") && !featctl_json)
        fprintf(stderr, "featctl: export: %llu rows written to %s\n", (unsigned long long)c.done, path);
    for (size_t j = 0; c.names && j < c.nf; j++) free(c.names[j]);
    free(c.names);
    feat_buf_free(&c.line);
    return rc;
}
