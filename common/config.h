/*
 * common/config.h — featd's configuration: one table of options (name, type,
 * range, default, doc) that parses, validates and documents the INI file.
 *
 *   [featd] [store] [ingest] [serve] [admin] [demo] [kafka] — fixed sections
 *   [table NAME]  — a feature table (entity key, source topic, TTL, features)
 *   [model NAME]  — a model (table, features, label topic, task)
 *
 * A key is named by section and key, e.g. "serve.listen" or "table.user.ttl".
 * [kafka] keys that featd does not own are passed to librdkafka after an
 * allow-list check (feat_config_kafka_allowed).
 *
 * feat_config_load() applies defaults, reads the file, validates every value
 * and the relations between sections; on failure it returns NULL and writes
 * one line naming the key and the problem into errstr.  A key set twice in
 * one section, a feature declared twice, a section declared twice, a value
 * continued on an indented line and a line longer than libinih reads are
 * refused too (one of the two values would be lost).  The result is
 * read-only afterwards and may be shared by all threads; free it with
 * feat_config_free() after every module is destroyed.
 */
#ifndef FEAT_COMMON_CONFIG_H
#define FEAT_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/ftype.h"


const char *feat_ftype_name(feat_ftype_t t); /* "double", ...; "none" */
feat_ftype_t feat_ftype_parse(const char *s); /* FEAT_FT_NONE if unknown */

#define FEAT_MAX_FEATURES 1024   /* per table */
#define FEAT_MAX_NAME 64         /* table, feature and model names, bytes */

/* Drift thresholds of one feature; NaN / -1 = use the [drift] default. */
typedef struct feat_drift_thresh {
    double ks, psi, kl, js, p_value;
    int enabled;         /* -1 default, 0 off, 1 on */
} feat_drift_thresh_t;

/* Aggregation functions (docs/ARCHITECTURE.md "Aggregations").  The numbers
 * are stored in tiles on disk: never renumber. */
typedef enum feat_agg_fn {
    FEAT_AGG_NONE = 0,
    FEAT_AGG_COUNT = 1,          /* int64; empty window 0 */
    FEAT_AGG_SUM = 2,            /* int64 over int64, else double; empty 0 */
    FEAT_AGG_MEAN = 3,           /* double; empty NOT_FOUND */
    FEAT_AGG_MIN = 4,            /* the input's type (int64, double); empty NOT_FOUND */
    FEAT_AGG_MAX = 5,
    FEAT_AGG_STDDEV = 6,         /* double, sample (n - 1); fewer than 2 values NOT_FOUND */
    FEAT_AGG_LAST = 7,           /* the input's type; greatest (ts, offset, partition); empty NOT_FOUND */
    FEAT_AGG_FIRST = 8,          /* least (ts, offset, partition) */
    FEAT_AGG_LAST_N = 9,         /* string: JSON array of the N most recent values, newest first; empty "[]" */
    FEAT_AGG_APPROX_DISTINCT = 10, /* int64, HyperLogLog (stats/hll.h); empty 0 */
    FEAT_AGG_APPROX_QUANTILE = 11  /* double, KLL (stats/kll.h); empty NOT_FOUND */
} feat_agg_fn_t;

const char *feat_agg_fn_name(feat_agg_fn_t f); /* "sum", ...; "none" */

/* One accumulator a table keeps per tile: a function over one input feature
 * with its parameter.  Several aggregated features share it (one per window). */
typedef struct feat_agg_spec {
    uint32_t id;         /* stable: a hash of "fn(input,param)", unique in its table (tiles carry it) */
    feat_agg_fn_t fn;
    uint32_t input;      /* index of the input feature (a plain feature of the same table) */
    uint32_t n;          /* last_n: N (1..100) */
    double q;            /* approx_quantile: q in [0, 1] */
} feat_agg_spec_t;

typedef struct feat_feature_conf {
    char *name;          /* [A-Za-z_][A-Za-z0-9_]*, at most FEAT_MAX_NAME bytes */
    feat_ftype_t type;
    feat_drift_thresh_t drift;
    /* aggregated features only (computed by featd from the table's events;
     * an event may not carry them): */
    int32_t agg;         /* index into the table's aggs, or -1 for a plain feature */
    int64_t window_ms;   /* (t - window, t] at tile granularity; 0 = the entity's lifetime */
} feat_feature_conf_t;

/* One agg.NAME line as written, kept so validation can expand it again. */
typedef struct feat_agg_decl {
    char *name;
    char *text;          /* "sum(amount) over 10m, 1h" */
} feat_agg_decl_t;

typedef struct feat_table_conf {
    char *name;
    char *entity;        /* entity key name (documentation and JSON "key" alias) */
    char *topic;         /* source topic */
    int64_t ttl_ms;      /* 0 = values never expire (plain features; aggregations have windows) */
    size_t nfeatures;    /* 1 .. FEAT_MAX_FEATURES: plain features in file order, then the
                          * aggregated ones (each agg line's windows in order) */
    feat_feature_conf_t *features;
    size_t nplain;       /* features[0 .. nplain) are plain */
    /* aggregations */
    size_t ndecls;
    feat_agg_decl_t *decls;
    size_t naggs;        /* distinct accumulators, in first-use order */
    feat_agg_spec_t *aggs;
    int64_t agg_tile_ms;     /* tile size: every window is a multiple of it */
    int64_t agg_max_tiles;   /* most tiles one window may span */
    int64_t agg_lateness_ms; /* an event this much older than its Kafka timestamp is not aggregated; 0 = any */
    int64_t agg_max_window_ms; /* the longest window (0 = none or lifetime only) */
    int agg_lifetime;        /* some aggregated feature has the lifetime window */
    int64_t agg_level_ms[3]; /* tile sizes kept: [0] = agg_tile; [1], [2] = r and r^2 times it (r about
                              * the cube root of longest window / agg_tile), so a long window reads
                              * whole coarse tiles in its middle; 0 = level unused (short windows) */
} feat_table_conf_t;

/* 1 if feature f of t is aggregated.  A zeroed feat_feature_conf_t (agg 0)
 * in a table without aggregations (naggs 0) reads as plain. */
static inline int feat_feature_is_agg(const feat_table_conf_t *t, size_t f) {
    return f < t->nfeatures && t->features[f].agg >= 0 && (size_t)t->features[f].agg < t->naggs;
}

#define FEAT_MAX_LABEL_KEYS 8  /* extra entity keys one label may carry (model.label_keys) */

/* One resolved model feature: where it is read from and with which key. */
typedef struct feat_model_feat {
    uint32_t table;      /* index into feat_config_t.tables */
    uint32_t feature;    /* index into that table's features */
    int32_t key;         /* -1 = the label's own key (the table's entity is the primary table's);
                          * else an index into label_keys */
} feat_model_feat_t;

typedef struct feat_model_conf {
    char *name;
    char *table;         /* a declared table: the primary one, keyed by the label's "key" */
    char *label_topic;   /* topic of LabelEvents for this model */
    char *task;          /* "logreg" | "linreg" | "mlp" | "gbdt_classifier" | "gbdt_regressor" */
    char *features_list; /* comma-separated; empty = every feature of the table; TABLE.FEATURE
                          * names another table's feature */
    size_t nfeatures;    /* resolved feature list (names owned here): the primary table's
                          * features unqualified, other tables' as "TABLE.FEATURE" (the names
                          * a trained model carries) */
    char **features;
    feat_model_feat_t *feats;     /* [nfeatures]: the same list resolved */
    int multi;                    /* 1 when some feature is read from a table other than `table` */
    char *label_keys_list;        /* comma-separated entity names a label carries besides "key" */
    size_t nlabel_keys;           /* 0 .. FEAT_MAX_LABEL_KEYS */
    char **label_keys;            /* owned; in label_keys_list order (the order stored with labels) */
    /* training */
    char *policy;                 /* "manual" | "auto" */
    double promote_margin;        /* auto: AUC +margin, or RMSE x (1 - margin) */
    char *promote_on;             /* auto: "validation" | "live" | "both" */
    int64_t promote_min_labels;   /* promote_on live/both: labelled predictions each alias needs */
    int64_t retrain_every_ms;     /* 0 = no schedule */
    int64_t retrain_after_labels; /* 0 = off */
    int64_t train_window_ms;      /* labels this recent; 0 = all */
    int64_t min_rows;
    char *lr_list, *l2_list, *epochs_list, *hidden_list; /* comma lists: more than one value = a grid */
    double lr[16], l2[16];
    uint32_t epochs[16], hidden[16];
    size_t nlr, nl2, nepochs, nhidden;
    char *trees_list, *max_depth_list; /* gbdt: comma lists, as above */
    uint32_t trees[16], max_depth[16];
    size_t ntrees, nmax_depth;
    double subsample, min_child_weight;
    int64_t early_stopping;       /* rounds; 0 = off */
    int64_t batch_size;
    double valid_fraction;
    int64_t top_k;                /* one-hot categories per string feature */
    char *device;                 /* "auto" | "cpu" | "gpu" */
    /* serving */
    char *prediction_topic;       /* "" = predictions logged in the store only */
    double quality_floor;         /* live AUC below (or RMSE above) this alerts; 0 = off */
    char *shadow;                 /* "off" | "challenger": every live champion Predict also scores it */
    double canary_percent;        /* entities answered by the challenger, sticky by key hash; 0 = off */
    int64_t quality_window;       /* prediction/label pairs in the rolling window */
    int64_t quality_horizon_ms;   /* a label joins the entity's latest prediction at most this old */
} feat_model_conf_t;

/* 1 for a classifier (labels 0/1, predictions P(1)): every task but linreg and gbdt_regressor. */
static inline int feat_model_conf_binary(const feat_model_conf_t *m) {
    return strcmp(m->task, "linreg") != 0 && strcmp(m->task, "gbdt_regressor") != 0;
}
/* 1 for gradient-boosted trees (gbdt_classifier, gbdt_regressor). */
static inline int feat_model_conf_trees(const feat_model_conf_t *m) { return strncmp(m->task, "gbdt_", 5) == 0; }

typedef struct feat_kv {
    char *key;           /* librdkafka property name, without "kafka." */
    char *value;
} feat_kv_t;

typedef struct feat_config {
    char *path;                 /* file it came from, or NULL */
    /* [featd] */
    char *data_dir;
    int log_level;              /* feat_log_level_t */
    char *log_file;             /* empty = stderr */
    int64_t progress_ms;        /* progress log interval, 0 = off */
    /* [store] */
    int store_sync;             /* fsync the WAL on every batch */
    int64_t store_block_cache;  /* bytes */
    int64_t store_write_buffer; /* bytes */
    int64_t store_write_buffers; /* memtables per column family */
    /* [ingest] */
    int64_t ingest_batch_max;   /* messages per WriteBatch */
    int64_t ingest_max_value;   /* bytes of one Kafka message value */
    int64_t ingest_max_key;     /* bytes of one entity key */
    int64_t ingest_max_string;  /* bytes of one string feature value */
    int64_t ingest_max_future_ms;
    int64_t ingest_max_age_ms;
    int64_t ingest_commit_ms;   /* broker (lag-only) commit interval */
    /* [kafka] (featd's own keys) */
    int kafka_embedded;
    int64_t kafka_embedded_brokers;
    char *kafka_embedded_control_file; /* "" = none */
    int64_t kafka_partitions;
    size_t nkafka;              /* pass-through librdkafka properties */
    feat_kv_t *kafka;
    /* [serve] */
    char *serve_listen;
    int64_t serve_threads;
    int64_t serve_busy_poll_us;
    int64_t serve_calls_per_method;
    int64_t serve_max_keys;       /* entity keys per lookup */
    int64_t serve_max_message;    /* bytes, request and response */
    int64_t serve_max_history_rows;
    int64_t serve_cache_bytes;
    int64_t serve_shutdown_grace_ms;
    char *serve_tls_cert;         /* PEM paths; "" = none (plain text) */
    char *serve_tls_key;
    char *serve_tls_client_ca;    /* "" = no client certificates; set = mutual TLS */
    int serve_plaintext;          /* plain text allowed on a non-loopback serve.listen */
    /* [cluster] */
    char *cluster_mode;           /* "single", "replica", "partitioned" */
    char *cluster_instance_id;    /* "" = the advertised address */
    char *cluster_listen;         /* partitioned: the peers' listener */
    char *cluster_advertised_address; /* "" = cluster.listen */
    char *cluster_partitioner;    /* "murmur2", "crc32" */
    char *cluster_topic;
    char *cluster_models_topic;
    int64_t cluster_forward_timeout_ms;
    int64_t cluster_standby_replicas;
    int64_t cluster_standby_max_lag;  /* records */
    /* [admin] */
    char *admin_listen;
    /* [http] */
    char *http_listen;          /* "" = no HTTP/JSON API */
    int64_t http_threads;
    int64_t http_max_body;      /* bytes */
    /* [redis] */
    char *redis_listen;         /* "" = no Redis-protocol listener */
    int64_t redis_threads;
    int64_t redis_max_clients;
    int64_t redis_max_request;  /* bytes of one command */
    int64_t redis_timeout;      /* seconds a client may stay idle; 0 = forever */
    /* [auth] */
    char *auth_read_tokens_file;  /* "" = none; either set = tokens required */
    char *auth_admin_tokens_file;
    /* [featctl] (read by featctl --config only) */
    char *featctl_tls_ca, *featctl_tls_cert, *featctl_tls_key, *featctl_tls_server_name, *featctl_token_file;
    /* [drift] */
    int drift_enabled;
    int64_t drift_window_events;  /* a window closes after this many events of its table... */
    int64_t drift_window_ms;      /* ...or this long after it opened (0 = by count only) */
    int64_t drift_min_window;     /* fewer values of a feature in a window: not judged */
    int64_t drift_reference_events; /* first-N reference size */
    int64_t drift_sketch_k;
    int64_t drift_bins;
    int64_t drift_recovery_windows;
    int64_t drift_history;        /* windows kept per feature for reports */
    double drift_ks, drift_psi, drift_kl, drift_js, drift_p_value;
    char *drift_alert_topic;      /* "" = none */
    char *drift_webhook;          /* "" = none */
    int64_t drift_webhook_queue;
    int drift_retrain_on_drift;
    /* [demo] */
    int demo_enabled;
    int64_t demo_rate;          /* events per second */
    int64_t demo_entities;
    int64_t demo_shift_after_ms;  /* shift one feature's distribution after this long (0 = never) */
    char *demo_shift_feature;     /* "table.feature" */
    /* tables and models */
    size_t ntables;
    feat_table_conf_t *tables;
    size_t nmodels;
    feat_model_conf_t *models;
} feat_config_t;

/* Loads and validates path.  NULL path = defaults only (no tables; invalid
 * unless tables are added with feat_config_set).  NULL + errstr on failure. */
feat_config_t *feat_config_load(const char *path, char *errstr, size_t errlen);

/* Loads path, then applies sets[0..nsets) ("section.key=value", featd's
 * --set; each name at most once) over it, then validates: an override may
 * supply a key the file lacks, and one the file has is replaced.  NULL path
 * = defaults and the overrides only.  NULL + errstr on failure; a refused
 * override's message ends in "(from --set)".  sets are borrowed. */
feat_config_t *feat_config_load_set(const char *path, const char *const *sets, size_t nsets, char *errstr,
                                    size_t errlen);

/* Parses text as a config file would be (used by tests and the fuzzer). */
feat_config_t *feat_config_parse(const char *text, size_t len, char *errstr, size_t errlen);

/* Overrides one key, "section.key=value" style: name "serve.listen" or
 * "table.user.ttl".  Call feat_config_validate() afterwards.  Both return
 * FEAT_OK, FEAT_ERR_CONFIG with errstr naming the key, or FEAT_ERR_NOMEM. */
feat_err_t feat_config_set(feat_config_t *cfg, const char *name, const char *value, char *errstr, size_t errlen);
feat_err_t feat_config_validate(feat_config_t *cfg, char *errstr, size_t errlen);

void feat_config_free(feat_config_t *cfg); /* NULL is fine */

const feat_table_conf_t *feat_config_table(const feat_config_t *cfg, const char *name);
const feat_model_conf_t *feat_config_model(const feat_config_t *cfg, const char *name);
/* "sum(amount) over 1h", "last_n(merchant, 5) over lifetime": aggregated
 * feature f of t as a declaration would write it ("" for a plain one). */
void feat_agg_describe(const feat_table_conf_t *t, size_t f, char *out, size_t n);

/* Index of a feature in a table, or -1. */
int feat_table_feature_index(const feat_table_conf_t *t, const char *name, size_t len);

/* 1 if the host of "host:port" is a loopback address: 127.0.0.0/8, ::1 (also
 * [::1] and ::ffff:127.x.x.x) or "localhost".  Anything else, including
 * 0.0.0.0 and other host names, is not. */
int feat_addr_is_loopback(const char *hostport);

/* 1 if "kafka.<key>" may be passed to librdkafka, else 0. */
int feat_config_kafka_allowed(const char *key);

/* Writes the Markdown reference of every key, generated from the table. */
void feat_config_reference(feat_buf_t *out);
/* Writes an example INI file from the same table (deploy/featd.example.ini):
 * every key of every fixed section commented out with its help, type, range
 * and default, sections in table order, then an uncommented example [table]
 * and [model] so the file loads as it is. */
void feat_config_example(feat_buf_t *out);

/* Parsers shared with other modules, FEAT_OK or FEAT_ERR_INVALID:
 * "250ms", "30s", "5m", "2h", "7d"; "0". */
feat_err_t feat_parse_duration_ms(const char *s, int64_t *out);
/* "4096", "64KiB", "64MiB", "1GiB" (also K/M/G, KB/MB/GB as powers of 1024). */
feat_err_t feat_parse_size(const char *s, int64_t *out);

#endif
