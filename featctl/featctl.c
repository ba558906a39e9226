/*
 * featctl — command-line client of a running featd (gRPC).
 *
 *   featctl [--addr HOST:PORT | --config FILE] [--json] [--timeout SECONDS] [--token-file F]
 *           [--tls] [--tls-ca F] [--tls-cert F --tls-key F] [--tls-server-name NAME] COMMAND ...
 *     get TABLE KEY... [--features F1,F2]     latest values (GetOnlineFeatures)
 *     history TABLE KEY@TIME... [--features F1,F2]
 *                                             values as of TIME (ms or RFC 3339), point in time
 *     status                                  version, readiness, ingest, lag, freshness
 *     tables                                  table schemas
 *     drift [--cluster] [TABLE [FEATURE]]     drift status and statistics per feature (--cluster: every
 *                                             instance's last window merged)
 *     drift pin TABLE [FEATURE]               make the last window the reference
 *     models [MODEL]                          registered versions, stages and metrics
 *     promote MODEL [VERSION]                 make a version (default: the challenger) the champion
 *     rollback MODEL                          return to the previous champion
 *     retrain MODEL [--reason TEXT] [--wait]  request a training run (--wait: progress bar)
 *     predict MODEL KEY...                    scores from the entities' online features
 *     predict MODEL --keys user_id=u1,merchant_id=m7 ...   the same, one key per entity kind per row
 *     score MODEL --at TIME [KEY...|--keys-file F] [--out F.csv]
 *                                             batch prediction as of TIME, to CSV
 *     backup DIR                              consistent copy of the store into the new
 *                                             directory DIR on featd's host (Backup)
 *     cluster                                 instances and the partition -> instance map (GetCluster)
 *
 * Security: --tls-ca F verifies featd's certificate (--tls alone: gRPC's
 * default roots), --tls-cert/--tls-key present a client certificate (mutual
 * TLS), --tls-server-name NAME is the name checked instead of the host;
 * --token-file F sends the file's first token line as "authorization: Bearer".
 * With --config FILE the [featctl] keys give the same settings (flags win).
 *
 * Human-readable tables by default, --json for scripts.  Exit status: 0 ok,
 * 1 the call failed (daemon unreachable, bad request: one line on stderr),
 * 2 bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/json.h"
#include "common/textwidth.h"
#include "common/timefmt.h"
#include "featd/v1/admin.pb-c.h"
#include "featd/v1/feature_service.pb-c.h"
#include "rpc/client.h"
#include "featctl/featctl.h"
#include "proto/status_json.h"
#include "rpc/tls.h"

int featctl_json;
int64_t featctl_timeout_ms = 10000;
feat_client_t *featctl_cli;
static const char *addr;      /* featd's gRPC address, for messages */
static int using_tls;         /* the channel is TLS */

void featctl_usage(FILE *f) {
    fprintf(f, "usage: featctl [--addr HOST:PORT | --config FILE] [--json] [--timeout SECONDS] [--token-file F]\n"
               "               [--tls] [--tls-ca F] [--tls-cert F --tls-key F] [--tls-server-name NAME] COMMAND\n"
               "  get TABLE KEY... [--features F1,F2]\n"
               "  history TABLE KEY@TIME... [--features F1,F2]   (TIME: ms since epoch or RFC 3339)\n"
               "  status\n"
               "  tables\n"
               "  drift [--cluster] [TABLE [FEATURE]]\n"
               "  drift pin TABLE [FEATURE]\n"
               "  models [MODEL]\n"
               "  models import MODEL FILE --format xgboost-json [--features F1,F2,...] [--no-wait]\n"
               "  promote MODEL [VERSION]          (no VERSION: the challenger)\n"
               "  rollback MODEL\n"
               "  retrain MODEL [--reason TEXT] [--wait]\n"
               "  predict MODEL KEY... [--alias champion|challenger] [--version N]\n"
               "  predict MODEL --keys E=KEY[,E=KEY...]...  (a row per --keys, a key per entity E)\n"
               "  score MODEL --at TIME [--keys-file FILE|-] [KEY...] [--out FILE.csv] [--alias A] [--version N]\n"
               "  export (--model MODEL | --table TABLE) [--from TIME] [--to TIME] [--format csv|jsonl]\n"
               "         [--out FILE]               (a point-in-time training set; TIME as for history)\n"
               "  backup DIR                       (a new directory on featd's host; relative = from here)\n"
               "  cluster\n");
}

int featctl_fail_call(const char *what, int code, const char *msg) {
    if (code == 14) /* UNAVAILABLE */
        fprintf(stderr, "featctl: cannot reach featd at %s: %s%s\n", addr, msg && *msg ? msg : "unavailable",
                using_tls ? " (TLS: check --tls-ca, --tls-server-name and, for mutual TLS, --tls-cert/--tls-key)"
                          : " (if featd serves TLS: --tls-ca FILE)");
    else
        fprintf(stderr, "featctl: %s: %s: %s\n", what, feat_grpc_code_name(code), msg && *msg ? msg : "(no message)");
    return 1;
}

int featctl_call(const char *method, const ProtobufCMessage *req, feat_buf_t *resp, const char *what) {
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return 1;
    protobuf_c_message_pack(req, buf);
    char msg[512];
    int code = feat_client_unary(featctl_cli, method, buf, n, resp, featctl_timeout_ms, msg, sizeof(msg));
    free(buf);
    return code ? featctl_fail_call(what, code, msg) : 0;
}

/* Splits "a,b,c" into an array (pointers into s, which is modified). */
static size_t split(char *s, char **out, size_t max) {
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ",")) out[n++] = tok;
    return n;
}

static void value_text(const Featd__V1__FeatureValue *v, feat_buf_t *b) {
    if (v && v->status == FEATD__V1__FEATURE_STATUS__UNAVAILABLE) {
        feat_buf_puts(b, "UNAVAILABLE");
        return;
    }
    if (v && v->status == FEATD__V1__FEATURE_STATUS__RESTORING) {
        feat_buf_puts(b, "RESTORING");
        return;
    }
    if (!v || v->status == FEATD__V1__FEATURE_STATUS__NOT_FOUND || !v->value) {
        feat_buf_puts(b, "-");
        return;
    }
    const Featd__V1__Value *x = v->value;
    switch (x->kind_case) {
    case FEATD__V1__VALUE__KIND_DOUBLE_VALUE: feat_buf_printf(b, "%.10g", x->double_value); break;
    case FEATD__V1__VALUE__KIND_INT64_VALUE: feat_buf_printf(b, "%lld", (long long)x->int64_value); break;
    case FEATD__V1__VALUE__KIND_BOOL_VALUE: feat_buf_puts(b, x->bool_value ? "true" : "false"); break;
    case FEATD__V1__VALUE__KIND_STRING_VALUE: feat_buf_puts(b, x->string_value); break;
    default: feat_buf_puts(b, "?"); break;
    }
    if (v->status == FEATD__V1__FEATURE_STATUS__EXPIRED) feat_buf_puts(b, "*");
}

static void value_json(const Featd__V1__FeatureValue *v, feat_buf_t *b) {
    const char *st = !v ? "NOT_FOUND"
                     : v->status == FEATD__V1__FEATURE_STATUS__PRESENT ? "PRESENT"
                     : v->status == FEATD__V1__FEATURE_STATUS__EXPIRED ? "EXPIRED"
                     : v->status == FEATD__V1__FEATURE_STATUS__UNAVAILABLE ? "UNAVAILABLE"
                     : v->status == FEATD__V1__FEATURE_STATUS__RESTORING ? "RESTORING" : "NOT_FOUND";
    feat_buf_printf(b, "{\"status\":\"%s\"", st);
    if (v && v->value && v->status != FEATD__V1__FEATURE_STATUS__NOT_FOUND) {
        const Featd__V1__Value *x = v->value;
        feat_buf_puts(b, ",\"value\":");
        switch (x->kind_case) {
        case FEATD__V1__VALUE__KIND_DOUBLE_VALUE: feat_buf_printf(b, "%.17g", x->double_value); break;
        case FEATD__V1__VALUE__KIND_INT64_VALUE: feat_buf_printf(b, "%lld", (long long)x->int64_value); break;
        case FEATD__V1__VALUE__KIND_BOOL_VALUE: feat_buf_puts(b, x->bool_value ? "true" : "false"); break;
        case FEATD__V1__VALUE__KIND_STRING_VALUE: feat_buf_json_str(b, x->string_value, strlen(x->string_value)); break;
        default: feat_buf_puts(b, "null"); break;
        }
        feat_buf_printf(b, ",\"event_time_ms\":%lld", (long long)v->event_time_ms);
    }
    feat_buf_putc(b, '}');
}

/* Prints text, then spaces up to width columns (by display width: a CJK
 * character or an emoji takes two columns, a combining mark none). */
static void print_padded(const char *text, size_t len, size_t width, const char *sep) {
    size_t w = feat_text_width(text, len);
    printf("%.*s%*s%s", (int)len, text, (int)(width > w && *sep != '\n' ? width - w : 0), "", sep);
}

/* Prints rows as an aligned table: header, then cells[r * ncols + c].
 * Columns are as wide as their widest cell in terminal columns, so values
 * holding CJK or emoji line up; the last column is not padded. */
void featctl_print_table(char **header, size_t ncols, feat_buf_t *cells, size_t nrows) {
    size_t *w = calloc(ncols, sizeof(size_t));
    if (!w) return;
    for (size_t c = 0; c < ncols; c++) w[c] = feat_text_width(header[c], strlen(header[c]));
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            const feat_buf_t *x = &cells[r * ncols + c];
            size_t cw = x->data ? feat_text_width(x->data, x->len) : 0;
            if (cw > w[c]) w[c] = cw;
        }
    for (size_t c = 0; c < ncols; c++) print_padded(header[c], strlen(header[c]), w[c], c + 1 < ncols ? "  " : "\n");
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            const feat_buf_t *x = &cells[r * ncols + c];
            print_padded(x->data ? x->data : "", x->data ? x->len : 0, w[c], c + 1 < ncols ? "  " : "\n");
        }
    free(w);
}

/* Each cmd_* returns featctl's exit status (featctl.h). */
static int cmd_get(int argc, char **argv) {
    char *fl = NULL;
    char **keys = calloc((size_t)argc + 1, sizeof(char *));
    size_t nk = 0;
    const char *table = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--features") && i + 1 < argc) fl = argv[++i];
        else if (!table) table = argv[i];
        else keys[nk++] = argv[i];
    }
    if (!table || !nk) {
        featctl_usage(stderr);
        free(keys);
        return 2;
    }
    char *feats[1024];
    size_t nf = fl ? split(fl, feats, 1024) : 0;
    Featd__V1__GetOnlineFeaturesRequest req = FEATD__V1__GET_ONLINE_FEATURES_REQUEST__INIT;
    req.table = (char *)table;
    req.n_entity_keys = nk;
    req.entity_keys = keys;
    req.n_features = nf;
    req.features = feats;
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call("/featd.v1.FeatureService/GetOnlineFeatures", &req.base, &resp, "get");
    free(keys);
    if (rc) {
        feat_buf_free(&resp);
        return rc;
    }
    Featd__V1__GetOnlineFeaturesResponse *r =
        featd__v1__get_online_features_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) {
        fprintf(stderr, "featctl: get: the reply does not decode\n");
        return 1;
    }
    feat_buf_t b = FEAT_BUF_INIT;
    if (featctl_json) {
        feat_buf_puts(&b, "{\"table\":");
        feat_buf_json_str(&b, table, strlen(table));
        feat_buf_puts(&b, ",\"rows\":[");
        for (size_t k = 0; k < r->n_rows; k++) {
            feat_buf_printf(&b, "%s{\"entity\":", k ? "," : "");
            feat_buf_json_str(&b, r->rows[k]->entity_key, strlen(r->rows[k]->entity_key));
            feat_buf_puts(&b, ",\"features\":{");
            for (size_t j = 0; j < r->n_features; j++) {
                feat_buf_printf(&b, "%s\"%s\":", j ? "," : "", r->features[j]);
                value_json(j < r->rows[k]->n_values ? r->rows[k]->values[j] : NULL, &b);
            }
            feat_buf_puts(&b, "}}");
        }
        feat_buf_puts(&b, "]}\n");
        fwrite(b.data, 1, b.len, stdout);
    } else {
        size_t ncols = r->n_features + 1;
        char **hdr = calloc(ncols, sizeof(char *));
        feat_buf_t *cells = calloc(ncols * (r->n_rows ? r->n_rows : 1), sizeof(feat_buf_t));
        hdr[0] = "ENTITY";
        int expired = 0;
        for (size_t j = 0; j < r->n_features; j++) hdr[j + 1] = r->features[j];
        for (size_t k = 0; k < r->n_rows; k++) {
            feat_buf_puts(&cells[k * ncols], r->rows[k]->entity_key);
            for (size_t j = 0; j < r->n_features && j < r->rows[k]->n_values; j++) {
                value_text(r->rows[k]->values[j], &cells[k * ncols + j + 1]);
                expired |= r->rows[k]->values[j]->status == FEATD__V1__FEATURE_STATUS__EXPIRED;
            }
        }
        featctl_print_table(hdr, ncols, cells, r->n_rows);
        if (expired) printf("* expired: older than the table's TTL\n");
        for (size_t i = 0; i < ncols * (r->n_rows ? r->n_rows : 1); i++) feat_buf_free(&cells[i]);
        free(cells);
        free(hdr);
    }
    feat_buf_free(&b);
    featd__v1__get_online_features_response__free_unpacked(r, NULL);
    return 0;
}

typedef struct hist_ctx {
    size_t n;
    char **features;
    size_t nf;
    feat_buf_t out;
    feat_buf_t *cells;
    size_t cap;
} hist_ctx_t;

static int on_hist(void *arg, const uint8_t *data, size_t len) {
    hist_ctx_t *h = arg;
    Featd__V1__HistoricalRow *row = featd__v1__historical_row__unpack(NULL, len, data);
    if (!row) return 1;
    if (h->n == 0 && row->n_features) {
        h->nf = row->n_features;
        h->features = calloc(h->nf, sizeof(char *));
        for (size_t j = 0; j < h->nf; j++) h->features[j] = strdup(row->features[j]);
    }
    char ts[40];
    feat_format_rfc3339(row->ts_ms, ts, sizeof(ts));
    if (featctl_json) {
        feat_buf_printf(&h->out, "%s{\"entity\":", h->n ? "," : "");
        feat_buf_json_str(&h->out, row->entity_key, strlen(row->entity_key));
        feat_buf_printf(&h->out, ",\"ts_ms\":%lld,\"features\":{", (long long)row->ts_ms);
        for (size_t j = 0; j < h->nf && j < row->n_values; j++) {
            feat_buf_printf(&h->out, "%s\"%s\":", j ? "," : "", h->features[j]);
            value_json(row->values[j], &h->out);
        }
        feat_buf_puts(&h->out, "}}");
    } else {
        size_t ncols = h->nf + 2;
        if ((h->n + 1) * ncols > h->cap) {
            size_t nc = ((h->n + 1) * ncols) * 2;
            h->cells = realloc(h->cells, nc * sizeof(feat_buf_t));
            memset(h->cells + h->cap, 0, (nc - h->cap) * sizeof(feat_buf_t));
            h->cap = nc;
        }
        feat_buf_t *c = &h->cells[h->n * ncols];
        feat_buf_puts(&c[0], row->entity_key);
        feat_buf_puts(&c[1], ts);
        for (size_t j = 0; j < h->nf && j < row->n_values; j++) value_text(row->values[j], &c[j + 2]);
    }
    h->n++;
    featd__v1__historical_row__free_unpacked(row, NULL);
    return 0;
}

static int cmd_history(int argc, char **argv) {
    char *fl = NULL;
    const char *table = NULL;
    Featd__V1__EntityTime *rows = calloc((size_t)argc + 1, sizeof(*rows));
    Featd__V1__EntityTime **rp = calloc((size_t)argc + 1, sizeof(*rp));
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--features") && i + 1 < argc) { fl = argv[++i]; continue; }
        if (!table) { table = argv[i]; continue; }
        char *at = strrchr(argv[i], '@');
        if (!at) {
            fprintf(stderr, "featctl: history: \"%s\" is not KEY@TIME\n", argv[i]);
            free(rows); free(rp);
            return 2;
        }
        *at = 0;
        int64_t ts;
        char *end;
        errno = 0;
        long long v = strtoll(at + 1, &end, 10);
        if (!errno && *end == 0 && end != at + 1) ts = v;
        else if (feat_parse_rfc3339(at + 1, strlen(at + 1), &ts) != FEAT_OK) {
            fprintf(stderr, "featctl: history: \"%s\" is not ms since the epoch or RFC 3339\n", at + 1);
            free(rows); free(rp);
            return 2;
        }
        featd__v1__entity_time__init(&rows[n]);
        rows[n].entity_key = argv[i];
        rows[n].ts_ms = ts;
        rp[n] = &rows[n];
        n++;
    }
    if (!table || !n) {
        featctl_usage(stderr);
        free(rows); free(rp);
        return 2;
    }
    char *feats[1024];
    size_t nf = fl ? split(fl, feats, 1024) : 0;
    Featd__V1__GetHistoricalFeaturesRequest req = FEATD__V1__GET_HISTORICAL_FEATURES_REQUEST__INIT;
    req.table = (char *)table;
    req.n_rows = n;
    req.rows = rp;
    req.n_features = nf;
    req.features = feats;
    size_t len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *buf = malloc(len + 1);
    protobuf_c_message_pack(&req.base, buf);
    hist_ctx_t h;
    memset(&h, 0, sizeof(h));
    char msg[512];
    int code = feat_client_stream(featctl_cli, "/featd.v1.FeatureService/GetHistoricalFeatures", buf, len, on_hist, &h,
                                  featctl_timeout_ms, msg, sizeof(msg));
    free(buf);
    free(rows);
    free(rp);
    int rc = 0;
    if (code) {
        rc = featctl_fail_call("history", code, msg);
    } else if (featctl_json) {
        printf("{\"table\":\"%s\",\"rows\":[%.*s]}\n", table, (int)h.out.len, h.out.data ? h.out.data : "");
    } else {
        size_t ncols = h.nf + 2;
        char **hdr = calloc(ncols, sizeof(char *));
        hdr[0] = "ENTITY";
        hdr[1] = "AS_OF";
        for (size_t j = 0; j < h.nf; j++) hdr[j + 2] = h.features[j];
        featctl_print_table(hdr, ncols, h.cells, h.n);
        free(hdr);
    }
    for (size_t i = 0; i < h.cap; i++) feat_buf_free(&h.cells[i]);
    free(h.cells);
    for (size_t j = 0; j < h.nf; j++) free(h.features[j]);
    free(h.features);
    feat_buf_free(&h.out);
    return rc;
}

static int cmd_status(void) {
    Featd__V1__StatusRequest req = FEATD__V1__STATUS_REQUEST__INIT;
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call("/featd.v1.AdminService/Status", &req.base, &resp, "status");
    if (rc) return rc;
    Featd__V1__StatusResponse *r = featd__v1__status_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) return 1;
    if (featctl_json) {
        feat_buf_t b = FEAT_BUF_INIT;
        feat_status_json(r, &b); /* the rendering /v1/status uses: the same keys */
        if (b.oom) {
            fprintf(stderr, "featctl: status: out of memory\n");
            rc = 1;
        } else {
            fwrite(b.data, 1, b.len, stdout);
        }
        feat_buf_free(&b);
    } else {
        int64_t lag = 0;
        for (size_t i = 0; i < r->n_partitions; i++) if (r->partitions[i]->lag > 0) lag += r->partitions[i]->lag;
        char up[FEAT_DURATION_MAX];
        feat_format_duration(r->uptime_s * 1000, up, sizeof(up));
        printf("featd %s, up %s, %s\n", r->version, up, r->ready ? "ready" : "NOT READY");
        printf("applied %llu events, %llu dead letters; store %.1f MiB; lag %lld over %zu partitions\n",
               (unsigned long long)r->events_applied, (unsigned long long)r->dead_letters,
               (double)r->store_bytes / 1048576.0, (long long)lag, r->n_partitions);
        if (r->gap_records) {
            printf("GAPS: %llu record(s) were deleted from the log before featd applied them (see featd's log):\n",
                   (unsigned long long)r->gap_records);
            for (size_t i = 0; i < r->n_partitions; i++)
                if (r->partitions[i]->gap_records)
                    printf("  %s[%d]: %llu\n", r->partitions[i]->topic, r->partitions[i]->partition,
                           (unsigned long long)r->partitions[i]->gap_records);
        }
        char *hdr[] = {"TABLE", "EVENTS", "NEWEST EVENT", "FRESHNESS"};
        feat_buf_t *cells = calloc(4 * (r->n_tables ? r->n_tables : 1), sizeof(feat_buf_t));
        for (size_t i = 0; i < r->n_tables; i++) {
            char ts[40] = "-";
            if (r->tables[i]->newest_event_time_ms) feat_format_rfc3339(r->tables[i]->newest_event_time_ms, ts, sizeof(ts));
            feat_buf_puts(&cells[i * 4], r->tables[i]->name);
            feat_buf_printf(&cells[i * 4 + 1], "%llu", (unsigned long long)r->tables[i]->events_applied);
            feat_buf_puts(&cells[i * 4 + 2], ts);
            /* featd sends -1 for a table with no event yet; a negative freshness
             * with an event is an event time in the future, printed as such */
            if (r->tables[i]->newest_event_time_ms) {
                char d[FEAT_DURATION_MAX];
                feat_buf_puts(&cells[i * 4 + 3], feat_format_duration(r->tables[i]->freshness_ms, d, sizeof(d)));
            } else {
                feat_buf_puts(&cells[i * 4 + 3], "-");
            }
        }
        featctl_print_table(hdr, 4, cells, r->n_tables);
        for (size_t i = 0; i < 4 * (r->n_tables ? r->n_tables : 1); i++) feat_buf_free(&cells[i]);
        free(cells);
    }
    featd__v1__status_response__free_unpacked(r, NULL);
    return rc;
}

/* Partition lists "0-3,7" of a member's topics, into b. */
static void parts_text(Featd__V1__TopicPartitions **tp, size_t n, feat_buf_t *b) {
    for (size_t i = 0; i < n; i++) {
        feat_buf_printf(b, "%s%s:", i ? " " : "", tp[i]->topic);
        for (size_t k = 0; k < tp[i]->n_partitions;) {
            size_t e = k;
            while (e + 1 < tp[i]->n_partitions && tp[i]->partitions[e + 1] == tp[i]->partitions[e] + 1) e++;
            if (e > k) feat_buf_printf(b, "%s%d-%d", k ? "," : "", tp[i]->partitions[k], tp[i]->partitions[e]);
            else feat_buf_printf(b, "%s%d", k ? "," : "", tp[i]->partitions[k]);
            k = e + 1;
        }
    }
    if (!n) feat_buf_puts(b, "-");
}

static void parts_json(Featd__V1__TopicPartitions **tp, size_t n, feat_buf_t *b) {
    feat_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i) feat_buf_putc(b, ',');
        feat_buf_json_str(b, tp[i]->topic, strlen(tp[i]->topic));
        feat_buf_puts(b, ":[");
        for (size_t k = 0; k < tp[i]->n_partitions; k++) feat_buf_printf(b, "%s%d", k ? "," : "", tp[i]->partitions[k]);
        feat_buf_putc(b, ']');
    }
    feat_buf_putc(b, '}');
}

static int cmd_cluster(void) {
    Featd__V1__GetClusterRequest req = FEATD__V1__GET_CLUSTER_REQUEST__INIT;
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call("/featd.v1.AdminService/GetCluster", &req.base, &resp, "cluster");
    if (rc) return rc;
    Featd__V1__ClusterMap *r = featd__v1__cluster_map__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) return 1;
    feat_buf_t b = FEAT_BUF_INIT;
    int64_t now = feat_now_ms();
    if (featctl_json) {
        feat_buf_puts(&b, "{\"mode\":");
        feat_buf_json_str(&b, r->mode, strlen(r->mode));
        feat_buf_puts(&b, ",\"instance_id\":");
        feat_buf_json_str(&b, r->instance_id, strlen(r->instance_id));
        feat_buf_puts(&b, ",\"partitioner\":");
        feat_buf_json_str(&b, r->partitioner, strlen(r->partitioner));
        feat_buf_printf(&b, ",\"misrouted_records\":%llu,\"members\":[", (unsigned long long)r->misrouted_records);
        for (size_t i = 0; i < r->n_members; i++) {
            Featd__V1__ClusterMember *m = r->members[i];
            feat_buf_puts(&b, i ? ",{\"instance_id\":" : "{\"instance_id\":");
            feat_buf_json_str(&b, m->instance_id, strlen(m->instance_id));
            feat_buf_puts(&b, ",\"address\":");
            feat_buf_json_str(&b, m->address, strlen(m->address));
            feat_buf_puts(&b, ",\"active\":");
            parts_json(m->active, m->n_active, &b);
            feat_buf_puts(&b, ",\"restoring\":");
            parts_json(m->restoring, m->n_restoring, &b);
            feat_buf_puts(&b, ",\"draining\":");
            parts_json(m->draining, m->n_draining, &b);
            feat_buf_puts(&b, ",\"standby\":");
            parts_json(m->standby, m->n_standby, &b);
            feat_buf_printf(&b, ",\"generation\":%d", m->generation);
            feat_buf_puts(&b, ",\"models\":[");
            for (size_t k = 0; k < m->n_models; k++) {
                feat_buf_puts(&b, k ? ",{\"model\":" : "{\"model\":");
                feat_buf_json_str(&b, m->models[k]->model, strlen(m->models[k]->model));
                feat_buf_printf(&b, ",\"champion\":%llu,\"challenger\":%llu,\"trainer\":%s}",
                                (unsigned long long)m->models[k]->champion, (unsigned long long)m->models[k]->challenger,
                                m->models[k]->trainer ? "true" : "false");
            }
            feat_buf_puts(&b, "]");
            feat_buf_printf(&b, ",\"updated_ms\":%lld,\"record_offset\":%lld,\"self\":%s,\"stale\":%s}",
                            (long long)m->updated_ms, (long long)m->record_offset, m->self ? "true" : "false",
                            m->stale ? "true" : "false");
        }
        feat_buf_puts(&b, "],\"partitions\":[");
        for (size_t i = 0; i < r->n_partitions; i++) {
            Featd__V1__PartitionOwner *o = r->partitions[i];
            feat_buf_puts(&b, i ? ",{\"topic\":" : "{\"topic\":");
            feat_buf_json_str(&b, o->topic, strlen(o->topic));
            feat_buf_printf(&b, ",\"partition\":%d,\"instance_id\":", o->partition);
            feat_buf_json_str(&b, o->instance_id, strlen(o->instance_id));
            feat_buf_printf(&b, ",\"restoring\":%s,\"standby\":[", o->restoring ? "true" : "false");
            for (size_t k = 0; k < o->n_standby; k++) {
                if (k) feat_buf_puts(&b, ",");
                feat_buf_json_str(&b, o->standby[k], strlen(o->standby[k]));
            }
            feat_buf_puts(&b, "]}");
        }
        feat_buf_puts(&b, "]}\n");
        fwrite(b.data, 1, b.len, stdout);
    } else if (!strcmp(r->mode, "single")) {
        printf("cluster.mode = single: this instance consumes every partition itself\n");
    } else {
        printf("cluster.mode = %s, partitioner %s, answered by %s; %llu misrouted record(s) here\n", r->mode,
               r->partitioner, r->instance_id, (unsigned long long)r->misrouted_records);
        char *hdr[] = {"INSTANCE", "ADDRESS", "GEN", "ACTIVE", "RESTORING", "STANDBY", "MODELS", "SEEN"};
        enum { NC = 8 };
        feat_buf_t *cells = calloc(NC * (r->n_members ? r->n_members : 1), sizeof(feat_buf_t));
        for (size_t i = 0; cells && i < r->n_members; i++) {
            Featd__V1__ClusterMember *m = r->members[i];
            feat_buf_t *row = &cells[i * NC];
            feat_buf_printf(&row[0], "%s%s%s", m->instance_id, m->self ? " (this)" : "", m->stale ? " (stale)" : "");
            feat_buf_puts(&row[1], m->address);
            if (m->generation > 0) feat_buf_printf(&row[2], "%d", m->generation); /* 0: an older featd's record */
            else feat_buf_puts(&row[2], "-");
            parts_text(m->active, m->n_active, &row[3]);
            parts_text(m->restoring, m->n_restoring, &row[4]);
            parts_text(m->standby, m->n_standby, &row[5]);
            for (size_t k = 0; k < m->n_models; k++) { /* name vCHAMPION[/vCHALLENGER][*: trains it] */
                const Featd__V1__ModelServed *ms = m->models[k];
                feat_buf_printf(&row[6], "%s%s v%llu", k ? ", " : "", ms->model, (unsigned long long)ms->champion);
                if (ms->challenger) feat_buf_printf(&row[6], "/v%llu", (unsigned long long)ms->challenger);
                if (ms->trainer) feat_buf_puts(&row[6], "*");
            }
            if (!m->n_models) feat_buf_puts(&row[6], "-");
            char d[FEAT_DURATION_MAX];
            feat_buf_printf(&row[7], "%s ago", feat_format_duration(now - m->updated_ms, d, sizeof(d)));
        }
        if (cells) featctl_print_table(hdr, NC, cells, r->n_members);
        if (r->n_members && r->members[0]->n_models)
            printf("MODELS: champion/challenger each instance serves; * marks the instance that trains the model\n");
        for (size_t i = 0; cells && i < NC * (r->n_members ? r->n_members : 1); i++) feat_buf_free(&cells[i]);
        free(cells);
        size_t unowned = 0;
        for (size_t i = 0; i < r->n_partitions; i++) unowned += !*r->partitions[i]->instance_id;
        if (unowned) printf("%zu partition(s) have no owner: their keys answer UNAVAILABLE\n", unowned);
    }
    feat_buf_free(&b);
    featd__v1__cluster_map__free_unpacked(r, NULL);
    return 0;
}

static int cmd_tables(void) {
    Featd__V1__ListTablesRequest req = FEATD__V1__LIST_TABLES_REQUEST__INIT;
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call("/featd.v1.AdminService/ListTables", &req.base, &resp, "tables");
    if (rc) return rc;
    Featd__V1__ListTablesResponse *r = featd__v1__list_tables_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) return 1;
    if (featctl_json) printf("{\"tables\":[");
    for (size_t i = 0; i < r->n_tables; i++) {
        Featd__V1__TableSchema *t = r->tables[i];
        if (featctl_json) {
            printf("%s{\"name\":\"%s\",\"entity\":\"%s\",\"topic\":\"%s\",\"ttl_ms\":%lld,\"features\":[", i ? "," : "",
                   t->name, t->entity, t->topic, (long long)t->ttl_ms);
            for (size_t f = 0; f < t->n_features; f++)
                printf("%s{\"name\":\"%s\",\"type\":\"%s\"}", f ? "," : "", t->features[f]->name, t->features[f]->type);
            printf("]}");
        } else {
            char ttl[FEAT_DURATION_MAX] = "none";
            if (t->ttl_ms) feat_format_duration(t->ttl_ms, ttl, sizeof(ttl));
            printf("%s (entity %s, topic %s, ttl %s)\n", t->name, t->entity, t->topic, ttl);
            for (size_t f = 0; f < t->n_features; f++) printf("  %-32s %s\n", t->features[f]->name, t->features[f]->type);
        }
    }
    if (featctl_json) printf("]}\n");
    featd__v1__list_tables_response__free_unpacked(r, NULL);
    return 0;
}

static int cmd_drift(int argc, char **argv) {
    if (argc >= 1 && !strcmp(argv[0], "pin")) {
        if (argc < 2) {
            featctl_usage(stderr);
            return 2;
        }
        Featd__V1__PinDriftReferenceRequest req = FEATD__V1__PIN_DRIFT_REFERENCE_REQUEST__INIT;
        req.table = argv[1];
        req.feature = argc > 2 ? argv[2] : "";
        feat_buf_t resp = FEAT_BUF_INIT;
        int rc = featctl_call("/featd.v1.AdminService/PinDriftReference", &req.base, &resp, "drift pin");
        if (rc) return rc;
        Featd__V1__PinDriftReferenceResponse *r =
            featd__v1__pin_drift_reference_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
        feat_buf_free(&resp);
        if (!r) return 1;
        if (featctl_json) printf("{\"pinned\":%u}\n", r->pinned);
        else printf("pinned the last window as the reference of %u feature(s)\n", r->pinned);
        featd__v1__pin_drift_reference_response__free_unpacked(r, NULL);
        return 0;
    }
    Featd__V1__GetDriftReportRequest req = FEATD__V1__GET_DRIFT_REPORT_REQUEST__INIT;
    if (argc > 0 && !strcmp(argv[0], "--cluster")) {
        req.cluster = 1;
        argc--, argv++;
    }
    req.table = argc > 0 ? argv[0] : "";
    req.feature = argc > 1 ? argv[1] : "";
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call("/featd.v1.AdminService/GetDriftReport", &req.base, &resp, "drift");
    if (rc) return rc;
    Featd__V1__DriftReport *r = featd__v1__drift_report__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) return 1;
    if (featctl_json) {
        printf("{\"features\":[");
        for (size_t i = 0; i < r->n_features; i++) {
            Featd__V1__FeatureDrift *f = r->features[i];
            printf("%s{\"table\":\"%s\",\"feature\":\"%s\",\"model\":\"%s\",\"status\":\"%s\",\"ks\":%.6g,"
                   "\"ks_p_value\":%.6g,\"psi\":%.6g,\"kl\":%.6g,\"js\":%.6g,\"chi2_p_value\":%.6g,"
                   "\"window_size\":%llu,\"reference_size\":%llu,\"reference_source\":\"%s\",\"instances\":%u}",
                   i ? "," : "", f->table, f->feature, f->model, f->status, f->ks, f->ks_p_value, f->psi, f->kl, f->js,
                   f->chi2_p_value, (unsigned long long)f->window_size, (unsigned long long)f->reference_size,
                   f->reference_source, f->instances);
        }
        printf("]}\n");
    } else {
        char *hdr[] = {"STREAM", "FEATURE", "STATUS", "KS", "P", "PSI", "KL", "JS", "WINDOW", "REFERENCE"};
        feat_buf_t *cells = calloc(10 * (r->n_features ? r->n_features : 1), sizeof(feat_buf_t));
        for (size_t i = 0; i < r->n_features; i++) {
            Featd__V1__FeatureDrift *f = r->features[i];
            feat_buf_t *c = &cells[i * 10];
            feat_buf_puts(&c[0], *f->table ? f->table : f->model);
            feat_buf_puts(&c[1], f->feature);
            feat_buf_puts(&c[2], f->status);
            feat_buf_printf(&c[3], "%.4f", f->ks);
            feat_buf_printf(&c[4], "%.3g", *f->feature && f->chi2_p_value != 1 && f->ks == 0 ? f->chi2_p_value : f->ks_p_value);
            feat_buf_printf(&c[5], "%.4f", f->psi);
            feat_buf_printf(&c[6], "%.4f", f->kl);
            feat_buf_printf(&c[7], "%.4f", f->js);
            feat_buf_printf(&c[8], "%llu", (unsigned long long)f->window_size);
            if (f->instances) feat_buf_printf(&c[8], " (%u instance%s)", f->instances, f->instances > 1 ? "s" : "");
            feat_buf_printf(&c[9], "%llu (%s)", (unsigned long long)f->reference_size, f->reference_source);
        }
        featctl_print_table(hdr, 10, cells, r->n_features);
        for (size_t i = 0; i < 10 * (r->n_features ? r->n_features : 1); i++) feat_buf_free(&cells[i]);
        free(cells);
    }
    featd__v1__drift_report__free_unpacked(r, NULL);
    return 0;
}

/* backup DIR: featd writes the backup itself, so DIR is a path on featd's
 * host; a relative one is made absolute against this process's directory
 * (right when featctl runs on the same host, the usual case). */
static int cmd_backup(int argc, char **argv) {
    if (argc != 1 || !*argv[0]) {
        featctl_usage(stderr);
        return 2;
    }
    char dir[4096];
    if (argv[0][0] == '/') {
        snprintf(dir, sizeof(dir), "%s", argv[0]);
    } else {
        char cwd[2048];
        if (!getcwd(cwd, sizeof(cwd))) {
            fprintf(stderr, "featctl: backup: cannot read the current directory: %s\n", strerror(errno));
            return 1;
        }
        snprintf(dir, sizeof(dir), "%s/%s", cwd, argv[0]);
    }
    Featd__V1__BackupRequest req = FEATD__V1__BACKUP_REQUEST__INIT;
    req.dir = dir;
    feat_buf_t resp = FEAT_BUF_INIT;
    int rc = featctl_call("/featd.v1.AdminService/Backup", &req.base, &resp, "backup");
    if (rc) return rc;
    Featd__V1__BackupResponse *r = featd__v1__backup_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    feat_buf_free(&resp);
    if (!r) return 1;
    if (featctl_json) {
        feat_buf_t b = FEAT_BUF_INIT;
        feat_buf_puts(&b, "{\"dir\":");
        feat_buf_json_str(&b, r->dir, strlen(r->dir));
        feat_buf_printf(&b, ",\"bytes\":%llu,\"files\":%llu,\"linked_files\":%llu,\"duration_ms\":%lld}\n",
                        (unsigned long long)r->bytes, (unsigned long long)r->files,
                        (unsigned long long)r->linked_files, (long long)r->duration_ms);
        fwrite(b.data, 1, b.len, stdout);
        feat_buf_free(&b);
    } else {
        char took[FEAT_DURATION_MAX];
        printf("backup written to %s: %llu bytes in %llu files (%llu hard-linked to the live store), %s\n"
               "restore: stop featd, make this directory its featd.data_dir, start featd\n",
               r->dir, (unsigned long long)r->bytes, (unsigned long long)r->files,
               (unsigned long long)r->linked_files, feat_format_duration(r->duration_ms, took, sizeof(took)));
    }
    featd__v1__backup_response__free_unpacked(r, NULL);
    return 0;
}

/* What featctl takes from --config FILE: the address (<data_dir>/featd.addr,
 * else serve.listen) and the [featctl] keys.  Strings owned; NULL = unset. */
typedef struct conn_conf {
    char *addr;
    char *tls_ca, *tls_cert, *tls_key, *tls_server_name, *token_file;
    int server_tls;              /* serve.tls_cert is set: featd serves TLS */
} conn_conf_t;

static char *dup_set(const char *s) { return s && *s ? strdup(s) : NULL; }

static void conn_from_config(const char *path, conn_conf_t *cc) {
    char err[512];
    feat_config_t *cfg = feat_config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "featctl: config: %s\n", err);
        exit(2);
    }
    char *out = NULL, fpath[4096];
    snprintf(fpath, sizeof(fpath), "%s/featd.addr", cfg->data_dir);
    FILE *f = fopen(fpath, "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        feat_json_tok_t toks[16];
        if (feat_json_parse(buf, n, toks, 16, 4, NULL, NULL) == FEAT_OK) {
            int v = feat_json_obj_get(buf, toks, 0, "grpc");
            if (v > 0) out = strndup(buf + toks[v].start, toks[v].end - toks[v].start);
        }
    }
    if (!out) out = strdup(cfg->serve_listen);
    cc->addr = out;
    cc->tls_ca = dup_set(cfg->featctl_tls_ca);
    cc->tls_cert = dup_set(cfg->featctl_tls_cert);
    cc->tls_key = dup_set(cfg->featctl_tls_key);
    cc->tls_server_name = dup_set(cfg->featctl_tls_server_name);
    cc->token_file = dup_set(cfg->featctl_token_file);
    cc->server_tls = *cfg->serve_tls_cert != 0;
    feat_config_free(cfg);
}

/* The first token of a token file (blank lines and # comment lines skipped);
 * exits 2 with a line naming `name` when there is none. */
static char *read_token(const char *path, const char *name) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "featctl: %s: cannot read token file %s: %s\n", name, path, strerror(errno));
        exit(2);
    }
    char buf[1024], *tok = NULL;
    while (!tok && fgets(buf, sizeof(buf), f)) {
        char *t = buf + strspn(buf, " \t");
        t[strcspn(t, "\r\n")] = 0;
        size_t l = strlen(t);
        while (l > 0 && (t[l - 1] == ' ' || t[l - 1] == '\t')) t[--l] = 0;
        if (l && t[0] != '#') tok = strdup(t);
    }
    fclose(f);
    memset(buf, 0, sizeof(buf));
    if (!tok) {
        fprintf(stderr, "featctl: %s: %s holds no token\n", name, path);
        exit(2);
    }
    return tok;
}

int main(int argc, char **argv) {
    int i = 1;
    char *owned_addr = NULL, *token = NULL;
    const char *config = NULL, *token_file = NULL, *tls_ca = NULL, *tls_cert = NULL, *tls_key = NULL,
               *tls_name = NULL;
    int tls = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) featctl_json = 1;
        else if (!strcmp(a, "--addr") && i + 1 < argc) addr = argv[++i];
        else if (!strcmp(a, "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(a, "--timeout") && i + 1 < argc) featctl_timeout_ms = (int64_t)(atof(argv[++i]) * 1000);
        else if (!strcmp(a, "--token-file") && i + 1 < argc) token_file = argv[++i];
        else if (!strcmp(a, "--tls")) tls = 1;
        else if (!strcmp(a, "--tls-ca") && i + 1 < argc) tls_ca = argv[++i];
        else if (!strcmp(a, "--tls-cert") && i + 1 < argc) tls_cert = argv[++i];
        else if (!strcmp(a, "--tls-key") && i + 1 < argc) tls_key = argv[++i];
        else if (!strcmp(a, "--tls-server-name") && i + 1 < argc) tls_name = argv[++i];
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            featctl_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "featctl: unknown option %s\n", a);
            featctl_usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        featctl_usage(stderr);
        return 2;
    }
    if (!tls_cert != !tls_key) {
        fprintf(stderr, "featctl: %s needs %s (a client certificate and its key)\n", tls_cert ? "--tls-cert" : "--tls-key",
                tls_cert ? "--tls-key" : "--tls-cert");
        return 2;
    }
    /* flags first, then the [featctl] keys of --config */
    conn_conf_t cc;
    memset(&cc, 0, sizeof(cc));
    if (config) conn_from_config(config, &cc);
    owned_addr = cc.addr;
    if (!addr) addr = owned_addr ? owned_addr : "127.0.0.1:7070";
    if (token_file) token = read_token(token_file, "--token-file");
    else if (cc.token_file) token = read_token(cc.token_file, "featctl.token_file");
    feat_tls_files_t tf = {tls_cert ? tls_cert : cc.tls_cert, tls_cert ? "--tls-cert" : "featctl.tls_cert",
                           tls_key ? tls_key : cc.tls_key,   tls_key ? "--tls-key" : "featctl.tls_key",
                           tls_ca ? tls_ca : cc.tls_ca,      tls_ca ? "--tls-ca" : "featctl.tls_ca"};
    if (!tls_name) tls_name = cc.tls_server_name;
    using_tls = tls || tf.ca || tf.cert || tls_name || cc.server_tls;
    char err[512];
    if (using_tls) {
        feat_tls_pem_t pem;
        if (feat_tls_load(&tf, &pem, err, sizeof(err))) {
            fprintf(stderr, "featctl: %s\n", err);
            return 2;
        }
        feat_client_tls_t ct = {pem.ca, pem.cert, pem.key, tls_name};
        featctl_cli = feat_client_new_tls(addr, &ct, err, sizeof(err));
        feat_tls_pem_free(&pem);
    } else {
        featctl_cli = feat_client_new(addr, err, sizeof(err));
    }
    free(cc.tls_ca);
    free(cc.tls_cert);
    free(cc.tls_key);
    free(cc.token_file);
    free(cc.tls_server_name); /* tls_name: gRPC holds its own copy */
    if (!featctl_cli) {
        fprintf(stderr, "featctl: %s\n", err);
        return 1;
    }
    if (token) feat_client_set_token(featctl_cli, token);
    /* --json may also follow the command */
    for (int k = i + 1, w = i + 1; k <= argc; k++) {
        if (k < argc && !strcmp(argv[k], "--json")) { featctl_json = 1; continue; }
        argv[w++] = k < argc ? argv[k] : NULL;
        if (k == argc) argc = w - 1;
    }
    const char *cmd = argv[i++];
    int rc;
    if (!strcmp(cmd, "get")) rc = cmd_get(argc - i, argv + i);
    else if (!strcmp(cmd, "history")) rc = cmd_history(argc - i, argv + i);
    else if (!strcmp(cmd, "status")) rc = cmd_status();
    else if (!strcmp(cmd, "tables")) rc = cmd_tables();
    else if (!strcmp(cmd, "drift")) rc = cmd_drift(argc - i, argv + i);
    else if (!strcmp(cmd, "models")) rc = featctl_models(argc - i, argv + i);
    else if (!strcmp(cmd, "export")) rc = featctl_export(argc - i, argv + i);
    else if (!strcmp(cmd, "promote")) rc = featctl_promote(argc - i, argv + i);
    else if (!strcmp(cmd, "rollback")) rc = featctl_rollback(argc - i, argv + i);
    else if (!strcmp(cmd, "retrain")) rc = featctl_retrain(argc - i, argv + i);
    else if (!strcmp(cmd, "predict")) rc = featctl_predict(argc - i, argv + i);
    else if (!strcmp(cmd, "score")) rc = featctl_score(argc - i, argv + i);
    else if (!strcmp(cmd, "backup")) rc = cmd_backup(argc - i, argv + i);
    else if (!strcmp(cmd, "cluster")) rc = cmd_cluster();
    else {
        fprintf(stderr, "featctl: unknown command %s\n", cmd);
        featctl_usage(stderr);
        rc = 2;
    }
    feat_client_destroy(featctl_cli);
    free(owned_addr);
    free(token);
    return rc;
}
