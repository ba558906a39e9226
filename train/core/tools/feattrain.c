/*
 * feattrain — train a featd model from a CSV file and print its metrics as JSON.
 *
 *   feattrain --csv data.csv --label churned --task logreg|linreg|mlp [options]
 *
 * The CSV has a header row.  Rows are taken as time-ordered, oldest first
 * (or sorted by --time-col); the newest --valid-frac of them validate.
 * Column types are inferred (int64 when every value is an integer, double
 * when every value is a number, bool when every value is true/false, else
 * string) unless given with --types.  Empty fields and NA, NaN, null are
 * missing.  Exit status: 0 on success, 1 on a training error, 2 on bad usage
 * or input.  Uses only train/core, so it runs wherever the core builds.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "train/core/gpu.h"
#include "train/core/internal.h"
#include "train/core/model.h"
#include "train/core/trainer.h"
/* FEAT_WITH_GBDT: built by train/feattrain_gbdt.c, which declares
 * feat_gbdt_learner() (train/gbdt.h, libxgboost); train/core alone has no
 * tree learner. */

#define MAX_GRID 64

static void usage(FILE *f) {
    fputs(
        "usage: feattrain --csv FILE --label COLUMN --task logreg|linreg|mlp|gbdt [options]\n"
        "  --valid-frac F        newest fraction of rows that validates (default 0.25)\n"
        "  --time-col COLUMN     sort rows by this column (numeric, or text such as RFC 3339)\n"
        "                        instead of taking file order; it is not a feature\n"
        "  --drop A,B            columns that are not features\n"
        "  --types A=T,B=T       column types: double, int64, bool, string (default: inferred)\n"
        "  --mlp-task T          auto (default), binary or regression\n"
        "  --lr X --l2 X --hidden N --epochs N --batch N --seed N --activation relu|tanh\n"
        "  --no-shuffle          keep time order inside epochs\n"
        "  --trees N --max-depth N --subsample X --min-child-weight X --early-stopping N\n"
        "                        gbdt (build/train/feattrain only; --lr is eta, --l2 lambda)\n"
        "  --grid-lr A,B,...  --grid-l2 ...  --grid-hidden ...  --grid-epochs ...\n"
        "                        grid search, chosen by validation AUC (binary) or RMSE\n"
        "  --top-k K --buckets H --min-count C --no-indicators   preprocessing\n"
        "  --backend auto|cpu|gpu   (default auto: the GPU when one is usable)\n"
        "  --model-out FILE      write the model blob\n"
        "  --dump-features FILE  write the preprocessed matrix (train rows, then\n"
        "                        validation rows; last column the label) as CSV\n",
        f);
}

static _Noreturn void die(const char *fmt, const char *arg) {
    fprintf(stderr, "feattrain: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(2);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        die("%s", "out of memory");
    return p;
}

/* ---- CSV -------------------------------------------------------------- */

typedef struct csv {
    char *buf;                /* whole file, fields NUL-terminated in place */
    size_t ncols, nrows;      /* data rows (header excluded) */
    char **header;            /* ncols */
    char **cell;              /* nrows × ncols */
} csv_t;

/* Parses one field at *p (in place); returns its start, sets *end_rec when
 * the record ended.  Fields are NUL-terminated afterwards. */
static char *parse_field(char **pp, char *end, int *end_rec, size_t line) {
    char *p = *pp, *start = p;
    if (p < end && *p == '"') {
        char *w = p;
        p++;
        for (;;) {
            if (p >= end) {
                char msg[64];
                snprintf(msg, sizeof(msg), "%zu", line);
                die("unterminated quoted field on line %s", msg);
            }
            if (*p == '"') {
                if (p + 1 < end && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            *w++ = *p++;
        }
        while (p < end && *p != ',' && *p != '\n')
            p++; /* junk after the closing quote is dropped */
        *end_rec = p >= end || *p == '\n';
        *w = '\0';
        *pp = p < end ? p + 1 : p;
        return start;
    }
    while (p < end && *p != ',' && *p != '\n')
        p++;
    *end_rec = p >= end || *p == '\n';
    char *fe = p;
    if (fe > start && fe[-1] == '\r')
        fe--;
    *fe = '\0';
    *pp = p < end ? p + 1 : p;
    return start;
}

static void csv_load(const char *path, csv_t *c) {
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s", path);
    size_t cap = 1 << 20, len = 0;
    c->buf = (char *)xmalloc(cap + 1);
    size_t k;
    while ((k = fread(c->buf + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            cap *= 2;
            c->buf = (char *)realloc(c->buf, cap + 1);
            if (!c->buf)
                die("%s", "out of memory");
        }
    }
    if (ferror(f))
        die("cannot read %s", path);
    fclose(f);
    c->buf[len] = '\0';
    char *p = c->buf, *end = c->buf + len;
    /* header */
    size_t hcap = 16;
    c->header = (char **)xmalloc(hcap * sizeof(char *));
    c->ncols = 0;
    int er = 0;
    size_t line = 1;
    if (p >= end)
        die("%s is empty", path);
    while (!er) {
        if (c->ncols == hcap) {
            hcap *= 2;
            c->header = (char **)realloc(c->header, hcap * sizeof(char *));
            if (!c->header)
                die("%s", "out of memory");
        }
        c->header[c->ncols++] = parse_field(&p, end, &er, line);
    }
    size_t rcap = 1024;
    c->cell = (char **)xmalloc(rcap * c->ncols * sizeof(char *));
    c->nrows = 0;
    while (p < end) {
        line++;
        if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) { /* blank line */
            p += *p == '\n' ? 1 : 2;
            continue;
        }
        if (c->nrows == rcap) {
            rcap *= 2;
            c->cell = (char **)realloc(c->cell, rcap * c->ncols * sizeof(char *));
            if (!c->cell)
                die("%s", "out of memory");
        }
        char **row = c->cell + c->nrows * c->ncols;
        size_t n = 0;
        er = 0;
        while (!er) {
            char *fld = parse_field(&p, end, &er, line);
            if (n < c->ncols)
                row[n] = fld;
            n++;
        }
        if (n != c->ncols) {
            char msg[96];
            snprintf(msg, sizeof(msg), "line %zu has %zu fields, the header %zu", line, n, c->ncols);
            die("%s", msg);
        }
        c->nrows++;
    }
}

static int is_missing(const char *s) {
    return !s[0] || !strcmp(s, "NA") || !strcasecmp(s, "nan") || !strcasecmp(s, "null");
}

static int parse_double(const char *s, double *out) {
    char *e;
    errno = 0;
    double d = strtod(s, &e);
    if (e == s || *e || !isfinite(d))
        return 0;
    *out = d;
    return 1;
}

static int parse_int(const char *s, int64_t *out) {
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (e == s || *e || errno)
        return 0;
    *out = (int64_t)v;
    return 1;
}

static int parse_bool(const char *s, int *out) {
    if (!strcasecmp(s, "true")) {
        *out = 1;
        return 1;
    }
    if (!strcasecmp(s, "false")) {
        *out = 0;
        return 1;
    }
    return 0;
}

static feat_ftype_t parse_type(const char *s) {
    if (!strcmp(s, "double"))
        return FEAT_FT_DOUBLE;
    if (!strcmp(s, "int64"))
        return FEAT_FT_INT64;
    if (!strcmp(s, "bool"))
        return FEAT_FT_BOOL;
    if (!strcmp(s, "string"))
        return FEAT_FT_STRING;
    die("unknown type %s (double, int64, bool, string)", s);
    return FEAT_FT_DOUBLE;
}

static const char *type_name(feat_ftype_t t) {
    switch (t) {
    case FEAT_FT_DOUBLE: return "double";
    case FEAT_FT_INT64: return "int64";
    case FEAT_FT_BOOL: return "bool";
    case FEAT_FT_STRING: return "string";
    case FEAT_FT_NONE: break;
    }
    return "?";
}

static feat_ftype_t infer_type(const csv_t *c, size_t col) {
    int all_int = 1, all_num = 1, all_bool = 1;
    for (size_t r = 0; r < c->nrows; r++) {
        const char *s = c->cell[r * c->ncols + col];
        if (is_missing(s))
            continue;
        double d;
        int64_t i;
        int b;
        if (all_int && !parse_int(s, &i))
            all_int = 0;
        if (all_num && !parse_double(s, &d))
            all_num = 0;
        if (all_bool && !parse_bool(s, &b))
            all_bool = 0;
        if (!all_num && !all_bool)
            return FEAT_FT_STRING;
    }
    if (all_int && all_num)
        return FEAT_FT_INT64;
    if (all_num)
        return FEAT_FT_DOUBLE;
    if (all_bool)
        return FEAT_FT_BOOL;
    return FEAT_FT_STRING;
}

static feat_raw_t to_value(const char *s, feat_ftype_t t) {
    double d;
    int64_t i;
    int b;
    if (is_missing(s))
        return feat_raw_missing();
    switch (t) {
    case FEAT_FT_NONE:
        return feat_raw_missing();
    case FEAT_FT_DOUBLE:
        return parse_double(s, &d) ? feat_raw_double(d) : feat_raw_missing();
    case FEAT_FT_INT64:
        if (parse_int(s, &i))
            return feat_raw_int64(i);
        return parse_double(s, &d) ? feat_raw_double(d) : feat_raw_missing();
    case FEAT_FT_BOOL:
        if (parse_bool(s, &b))
            return feat_raw_bool(b);
        return parse_double(s, &d) ? feat_raw_double(d) : feat_raw_missing();
    case FEAT_FT_STRING:
        return feat_raw_string(s, strlen(s));
    }
    return feat_raw_missing();
}

/* ---- options ---------------------------------------------------------- */

static size_t split_list(char *s, char **out, size_t max) {
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max)
            die("list too long: %s", tok);
        out[n++] = tok;
    }
    return n;
}

static double num_arg(const char *opt, const char *v) {
    double d;
    if (!v || !parse_double(v, &d))
        die("%s needs a number", opt);
    return d;
}

static uint32_t u32_arg(const char *opt, const char *v) {
    int64_t i;
    if (!v || !parse_int(v, &i) || i < 0 || i > 0xffffffffLL)
        die("%s needs a non-negative integer", opt);
    return (uint32_t)i;
}

static int in_list(char **list, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return 1;
    return 0;
}

/* ---- JSON ------------------------------------------------------------- */

static void json_num(double d) {
    if (isfinite(d))
        printf("%.10g", d);
    else
        printf("null");
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void json_metrics(feat_task_t task, const feat_eval_t *m) {
    if (task == FEAT_TASK_BINARY) {
        printf("{\"auc\": ");
        json_num(m->auc);
        printf(", \"logloss\": ");
        json_num(m->logloss);
        printf(", \"accuracy\": ");
        json_num(m->accuracy);
        printf("}");
    } else {
        printf("{\"rmse\": ");
        json_num(m->rmse);
        printf(", \"mae\": ");
        json_num(m->mae);
        printf("}");
    }
}

static void json_hyper(const feat_hyper_t *h, feat_model_kind_t kind) {
    printf("{\"learning_rate\": ");
    json_num(h->learning_rate);
    printf(", \"l2\": ");
    json_num(h->l2);
    if (kind == FEAT_MODEL_TREES) {
        printf(", \"trees\": %u, \"max_depth\": %u, \"subsample\": ", h->trees, h->max_depth);
        json_num(h->subsample);
        printf(", \"early_stopping\": %u, \"seed\": %llu}", h->early_stopping, (unsigned long long)h->seed);
        return;
    }
    if (kind == FEAT_MODEL_MLP)
        printf(", \"hidden\": %u, \"activation\": \"%s\"", h->hidden,
               feat_activation_name((feat_activation_t)h->activation));
    printf(", \"epochs\": %u, \"batch_size\": %u, \"shuffle\": %u, \"seed\": %llu}", h->epochs,
           h->batch_size, h->shuffle, (unsigned long long)h->seed);
}

/* ---- time sort -------------------------------------------------------- */

typedef struct tkey {
    double num;
    const char *text;
    size_t row;
} tkey_t;

static int tkey_num(const void *a, const void *b) {
    const tkey_t *x = (const tkey_t *)a, *y = (const tkey_t *)b;
    if (x->num != y->num)
        return x->num < y->num ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

static int tkey_text(const void *a, const void *b) {
    const tkey_t *x = (const tkey_t *)a, *y = (const tkey_t *)b;
    int c = strcmp(x->text, y->text);
    if (c)
        return c;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Writes the model blob and feature dump when asked, then the JSON report. */
static void report(const feat_model_t *m, const feat_train_report_t *rep,
                   const feat_grid_result_t *results, const feat_feature_def_t *defs, size_t nf,
                   size_t n, const char *label, const char *model_out, const char *dump,
                   const feat_raw_t *rows, const double *y, double load_seconds) {
    const feat_model_info_t *info = feat_model_info(m);
    if (model_out) {
        void *blob;
        size_t len;
        if (feat_model_serialize(m, &blob, &len) != FEAT_OK)
            die("%s", "cannot serialise the model");
        FILE *f = fopen(model_out, "wb");
        if (!f || fwrite(blob, 1, len, f) != len || fclose(f) != 0)
            die("cannot write %s", model_out);
        free(blob);
    }
    if (dump) {
        FILE *f = fopen(dump, "w");
        if (!f)
            die("cannot write %s", dump);
        size_t d = info->input_dim;
        float *x = (float *)xmalloc(d * sizeof(float));
        for (size_t j = 0; j < d; j++)
            fprintf(f, "f%zu,", j);
        fprintf(f, "label\n");
        for (size_t i = 0; i < n; i++) {
            feat_prep_apply(feat_model_prep(m), rows + i * nf, x);
            for (size_t j = 0; j < d; j++)
                fprintf(f, "%.9g,", (double)x[j]);
            fprintf(f, "%.17g\n", y[i]);
        }
        free(x);
        if (fclose(f) != 0)
            die("cannot write %s", dump);
    }

    printf("{\n  \"task\": \"%s\",\n  \"model_task\": \"%s\",\n  \"backend\": \"%s\",\n",
           feat_model_kind_name(info->kind), feat_task_name(info->task),
           feat_backend_name(info->backend));
    printf("  \"gpu_note\": ");
    json_str(rep->note);
    printf(",\n  \"label\": ");
    json_str(label);
    printf(",\n  \"rows\": %zu,\n  \"n_train\": %zu,\n  \"n_valid\": %zu,\n", n, rep->n_train,
           rep->n_valid);
    printf("  \"n_features\": %zu,\n  \"input_dim\": %zu,\n  \"features\": [", nf, rep->input_dim);
    for (size_t k = 0; k < nf; k++) {
        printf("%s{\"name\": ", k ? ", " : "");
        json_str(defs[k].name);
        printf(", \"type\": \"%s\"}", type_name(defs[k].type));
    }
    printf("],\n  \"chosen\": ");
    json_hyper(&info->hyper, info->kind);
    if (feat_model_trees(m))
        printf(",\n  \"trees_kept\": %zu", feat_trees_ntrees(feat_model_trees(m)));
    printf(",\n  \"valid\": ");
    json_metrics(info->task, &info->valid);
    printf(",\n  \"train\": ");
    json_metrics(info->task, &info->train);
    printf(",\n  \"grid\": [");
    for (size_t i = 0; i < rep->n_configs && i < rep->results_cap; i++) {
        printf("%s\n    {\"hyper\": ", i ? "," : "");
        json_hyper(&results[i].hyper, info->kind);
        printf(", \"valid\": ");
        json_metrics(info->task, &results[i].valid);
        printf(", \"seconds\": %.6f, \"diverged\": %s}", results[i].seconds,
               results[i].diverged ? "true" : "false");
    }
    printf("],\n  \"best\": %zu,\n", rep->best);
    printf("  \"load_seconds\": %.6f,\n  \"prep_seconds\": %.6f,\n  \"train_seconds\": %.6f,\n",
           load_seconds, rep->prep_seconds, rep->train_seconds);
    printf("  \"rows_per_second\": %.1f\n}\n", rep->rows_per_second);

}

int main(int argc, char **argv) {
    const char *csv_path = NULL, *label = NULL, *task_s = NULL, *time_col = NULL;
    const char *model_out = NULL, *dump = NULL, *mlp_task = "auto";
    char *drop[256], *types[256];
    size_t n_drop = 0, n_types = 0, n_copies = 0;
    char *copies[16];
    double g_lr[MAX_GRID], g_l2[MAX_GRID];
    uint32_t g_hidden[MAX_GRID], g_epochs[MAX_GRID];
    feat_train_conf_t conf;
    feat_train_conf_init(&conf);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--csv")) csv_path = v;
        else if (!strcmp(a, "--label")) label = v;
        else if (!strcmp(a, "--task")) task_s = v;
        else if (!strcmp(a, "--time-col")) time_col = v;
        else if (!strcmp(a, "--model-out")) model_out = v;
        else if (!strcmp(a, "--dump-features")) dump = v;
        else if (!strcmp(a, "--mlp-task")) mlp_task = v;
        else if (!strcmp(a, "--valid-frac")) conf.valid_fraction = num_arg(a, v);
        else if (!strcmp(a, "--lr")) conf.hyper.learning_rate = num_arg(a, v);
        else if (!strcmp(a, "--l2")) conf.hyper.l2 = num_arg(a, v);
        else if (!strcmp(a, "--hidden")) conf.hyper.hidden = u32_arg(a, v);
        else if (!strcmp(a, "--epochs")) conf.hyper.epochs = u32_arg(a, v);
        else if (!strcmp(a, "--batch")) conf.hyper.batch_size = u32_arg(a, v);
        else if (!strcmp(a, "--seed")) conf.hyper.seed = u32_arg(a, v);
        else if (!strcmp(a, "--trees")) conf.hyper.trees = u32_arg(a, v);
        else if (!strcmp(a, "--max-depth")) conf.hyper.max_depth = u32_arg(a, v);
        else if (!strcmp(a, "--subsample")) conf.hyper.subsample = num_arg(a, v);
        else if (!strcmp(a, "--min-child-weight")) conf.hyper.min_child_weight = num_arg(a, v);
        else if (!strcmp(a, "--early-stopping")) conf.hyper.early_stopping = u32_arg(a, v);
        else if (!strcmp(a, "--top-k")) conf.prep.top_k = u32_arg(a, v);
        else if (!strcmp(a, "--buckets")) conf.prep.hash_buckets = u32_arg(a, v);
        else if (!strcmp(a, "--min-count")) conf.prep.min_count = u32_arg(a, v);
        else if (!strcmp(a, "--activation")) {
            if (!v || (strcmp(v, "relu") && strcmp(v, "tanh")))
                die("%s", "--activation: relu or tanh");
            conf.hyper.activation = !strcmp(v, "relu") ? FEAT_ACT_RELU : FEAT_ACT_TANH;
        } else if (!strcmp(a, "--backend")) {
            if (!v)
                die("%s", "--backend: auto, cpu or gpu");
            if (!strcmp(v, "auto")) conf.backend = FEAT_BACKEND_AUTO;
            else if (!strcmp(v, "cpu")) conf.backend = FEAT_BACKEND_CPU;
            else if (!strcmp(v, "gpu")) conf.backend = FEAT_BACKEND_GPU;
            else die("--backend %s: auto, cpu or gpu", v);
        } else if (!strcmp(a, "--drop") || !strcmp(a, "--types") || !strncmp(a, "--grid-", 7)) {
            if (!v)
                die("%s needs a list", a);
            char *copy = strdup(v), *items[MAX_GRID];
            if (!copy || n_copies == sizeof(copies) / sizeof(copies[0]))
                die("%s", "out of memory or too many list options");
            copies[n_copies++] = copy; /* drop[] and types[] point into it */
            if (!strcmp(a, "--drop")) {
                n_drop = split_list(copy, drop, 256);
            } else if (!strcmp(a, "--types")) {
                n_types = split_list(copy, types, 256);
            } else {
                size_t n = split_list(copy, items, MAX_GRID);
                if (!strcmp(a, "--grid-lr")) {
                    for (size_t k = 0; k < n; k++) g_lr[k] = num_arg(a, items[k]);
                    conf.grid.learning_rate = g_lr, conf.grid.n_learning_rate = n;
                } else if (!strcmp(a, "--grid-l2")) {
                    for (size_t k = 0; k < n; k++) g_l2[k] = num_arg(a, items[k]);
                    conf.grid.l2 = g_l2, conf.grid.n_l2 = n;
                } else if (!strcmp(a, "--grid-hidden")) {
                    for (size_t k = 0; k < n; k++) g_hidden[k] = u32_arg(a, items[k]);
                    conf.grid.hidden = g_hidden, conf.grid.n_hidden = n;
                } else if (!strcmp(a, "--grid-epochs")) {
                    for (size_t k = 0; k < n; k++) g_epochs[k] = u32_arg(a, items[k]);
                    conf.grid.epochs = g_epochs, conf.grid.n_epochs = n;
                } else {
                    die("unknown option %s", a);
                }
            }
        } else {
            used = 0;
            if (!strcmp(a, "--no-shuffle")) conf.hyper.shuffle = 0;
            else if (!strcmp(a, "--no-indicators")) conf.prep.missing_indicators = 0;
            else {
                usage(stderr);
                die("unknown option %s", a);
            }
        }
        if (used) {
            if (!v)
                die("%s needs a value", a);
            i++;
        }
    }
    if (!csv_path || !label || !task_s) {
        usage(stderr);
        die("%s", "--csv, --label and --task are required");
    }
    if (!strcmp(task_s, "logreg")) conf.kind = FEAT_MODEL_LOGREG;
    else if (!strcmp(task_s, "linreg")) conf.kind = FEAT_MODEL_LINREG;
    else if (!strcmp(task_s, "mlp")) conf.kind = FEAT_MODEL_MLP;
#ifdef FEAT_WITH_GBDT
    else if (!strcmp(task_s, "gbdt")) conf.kind = FEAT_MODEL_TREES, conf.learner = feat_gbdt_learner();
#endif
    else die("--task %s: logreg, linreg, mlp or (build/train/feattrain) gbdt", task_s);
    if (conf.kind == FEAT_MODEL_MLP || conf.kind == FEAT_MODEL_TREES) {
        if (!strcmp(mlp_task, "binary")) conf.task = FEAT_TASK_BINARY;
        else if (!strcmp(mlp_task, "regression")) conf.task = FEAT_TASK_REGRESSION;
        else if (strcmp(mlp_task, "auto")) die("--mlp-task %s: auto, binary or regression", mlp_task);
    }
    conf.label_name = label;

    double t0 = feat_now();
    csv_t c;
    csv_load(csv_path, &c);
    if (c.nrows == 0)
        die("%s has no data rows", csv_path);
    long label_col = -1, time_idx = -1;
    for (size_t j = 0; j < c.ncols; j++) {
        if (!strcmp(c.header[j], label))
            label_col = (long)j;
        if (time_col && !strcmp(c.header[j], time_col))
            time_idx = (long)j;
    }
    if (label_col < 0)
        die("no column %s", label);
    if (time_col && time_idx < 0)
        die("no column %s", time_col);

    /* features: every other column not dropped */
    feat_feature_def_t *defs = (feat_feature_def_t *)xmalloc(c.ncols * sizeof(*defs));
    size_t *colof = (size_t *)xmalloc(c.ncols * sizeof(size_t));
    size_t nf = 0;
    for (size_t j = 0; j < c.ncols; j++) {
        if ((long)j == label_col || (long)j == time_idx || in_list(drop, n_drop, c.header[j]))
            continue;
        defs[nf].name = c.header[j];
        defs[nf].type = infer_type(&c, j);
        for (size_t k = 0; k < n_types; k++) {
            char *eq = strchr(types[k], '=');
            if (!eq)
                die("--types item %s is not NAME=TYPE", types[k]);
            if ((size_t)(eq - types[k]) == strlen(c.header[j]) &&
                !strncmp(types[k], c.header[j], (size_t)(eq - types[k])))
                defs[nf].type = parse_type(eq + 1);
        }
        colof[nf++] = j;
    }
    if (nf == 0)
        die("%s", "no feature columns");

    /* row order */
    size_t n = c.nrows;
    size_t *order = (size_t *)xmalloc(n * sizeof(size_t));
    for (size_t r = 0; r < n; r++)
        order[r] = r;
    if (time_idx >= 0) {
        tkey_t *keys = (tkey_t *)xmalloc(n * sizeof(tkey_t));
        int numeric = 1;
        for (size_t r = 0; r < n; r++) {
            keys[r].row = r;
            keys[r].text = c.cell[r * c.ncols + (size_t)time_idx];
            if (!parse_double(keys[r].text, &keys[r].num))
                numeric = 0;
        }
        qsort(keys, n, sizeof(tkey_t), numeric ? tkey_num : tkey_text);
        for (size_t r = 0; r < n; r++)
            order[r] = keys[r].row;
        free(keys);
    }

    feat_raw_t *rows = (feat_raw_t *)xmalloc(n * nf * sizeof(feat_raw_t));
    double *y = (double *)xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        char **src = c.cell + order[i] * c.ncols;
        for (size_t k = 0; k < nf; k++)
            rows[i * nf + k] = to_value(src[colof[k]], defs[k].type);
        const char *ls = src[label_col];
        if (!parse_double(ls, &y[i])) {
            if (!strcasecmp(ls, "true") || !strcasecmp(ls, "false"))
                y[i] = !strcasecmp(ls, "true");
            else
                die("label %s is not a number", ls);
        }
    }
    double load_seconds = feat_now() - t0;

    feat_grid_result_t *results = (feat_grid_result_t *)xmalloc(4096 * sizeof(*results));
    feat_train_report_t rep;
    memset(&rep, 0, sizeof(rep));
    rep.results = results;
    rep.results_cap = 4096;
    feat_train_data_t data = {defs, nf, rows, y, n};
    feat_model_t *m = NULL;
    char err[256] = "";
    feat_err_t e = feat_train(&conf, &data, &m, &rep, err, sizeof(err));
    int rc = 0;
    if (e != FEAT_OK) {
        fprintf(stderr, "feattrain: %s (%s)\n", err, feat_err_str(e));
        rc = 1;
        goto done;
    }
    report(m, &rep, results, defs, nf, n, label, model_out, dump, rows, y, load_seconds);
done:
    feat_model_destroy(m);

    free(results);
    free(rows);
    free(y);
    free(order);
    free(defs);
    free(colof);
    free(c.cell);
    free(c.header);
    free(c.buf);
    for (size_t i = 0; i < n_copies; i++)
        free(copies[i]);
    return rc;
}
