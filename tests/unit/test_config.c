/* Unit tests for common/config.c: values, defaults, and that every kind of
 * mistake is refused with one line naming the key. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"

static const char *good =
    "[featd]\n"
    "data_dir = /tmp/x\n"
    "log_level = debug\n"
    "[store]\n"
    "block_cache = 64MiB\n"
    "[ingest]\n"
    "max_future = 2h\n"
    "[kafka]\n"
    "embedded = false\n"
    "bootstrap.servers = 127.0.0.1:9092\n"
    "session.timeout.ms = 6000\n"
    "[table user]\n"
    "entity = user_id\n"
    "topic = user_events\n"
    "ttl = 7d\n"
    "feature.clicks = int64\n"
    "feature.ctr = double\n"
    "feature.country = string\n"
    "feature.premium = bool\n"
    "[model churn]\n"
    "table = user\n"
    "label_topic = churn_labels\n"
    "features = clicks, country\n";

START_TEST(parses_values_and_defaults) {
    char err[256] = "";
    feat_config_t *c = feat_config_parse(good, strlen(good), err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->data_dir, "/tmp/x");
    ck_assert_int_eq(c->log_level, FEAT_LOG_DEBUG);
    ck_assert_int_eq(c->store_block_cache, 64LL << 20);
    ck_assert_int_eq(c->ingest_max_future_ms, 7200000);
    ck_assert_int_eq(c->ingest_batch_max, 10000); /* default */
    ck_assert_int_eq(c->kafka_embedded, 0);
    ck_assert_int_eq(c->nkafka, 2);
    ck_assert_str_eq(c->kafka[0].key, "bootstrap.servers");
    ck_assert_str_eq(c->kafka[1].value, "6000");
    ck_assert_int_eq(c->ntables, 1);
    const feat_table_conf_t *t = feat_config_table(c, "user");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->entity, "user_id");
    ck_assert_int_eq(t->ttl_ms, 7LL * 86400000);
    ck_assert_int_eq(t->nfeatures, 4);
    ck_assert_str_eq(t->features[2].name, "country");
    ck_assert_int_eq(t->features[2].type, FEAT_FT_STRING);
    ck_assert_int_eq(t->features[3].type, FEAT_FT_BOOL);
    const feat_model_conf_t *m = feat_config_model(c, "churn");
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->task, "logreg");
    ck_assert_int_eq(m->nfeatures, 2);
    ck_assert_str_eq(m->features[1], "country");
    ck_assert_int_eq(feat_table_feature_index(t, "ctr", 3), 1);
    ck_assert_int_eq(feat_table_feature_index(t, "nope", 4), -1);
    /* overrides by name */
    ck_assert_int_eq(feat_config_set(c, "table.user.ttl", "30s", err, sizeof(err)), 0);
    ck_assert_int_eq(t->ttl_ms, 30000);
    ck_assert_int_ne(feat_config_set(c, "ingest.batch_max", "0", err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "ingest.batch_max") != NULL, "%s", err);
    feat_config_free(c);
}
END_TEST

/* Each bad config must fail and its one-line error must name `key`. */
static const struct { const char *text; const char *key; } bad[] = {
    {"[featd]\nlog_level = loud\n", "featd.log_level"},
    {"[featd]\nbogus = 1\n", "featd.bogus"},
    {"[nosuch]\nx = 1\n", "[nosuch]"},
    {"[store]\nblock_cache = lots\n", "store.block_cache"},
    {"[store]\nblock_cache = 1\n", "store.block_cache"},           /* below range */
    {"[store]\nsync = maybe\n", "store.sync"},
    {"[ingest]\nmax_future = 10\n", "ingest.max_future"},          /* no unit */
    {"[ingest]\nbatch_max = 12x\n", "ingest.batch_max"},
    {"[ingest]\nbatch_max = 1\nbatch_max = 2\n", "ingest.batch_max"}, /* twice */
    {"[kafka]\nenable.auto.commit = true\n", "kafka.enable.auto.commit"},
    {"[kafka]\nsasl.passwd = x\n", "kafka.sasl.passwd"},
    {"[kafka]\nbootstrap.servers = h:1\n[table t]\ntopic=x\nfeature.a=int64\n", "kafka.embedded"},
    {"[kafka]\nembedded = false\n[table t]\ntopic=x\nfeature.a=int64\n", "kafka.bootstrap.servers"},
    {"[featd]\ndata_dir = /tmp\n", "table"},                       /* no tables */
    {"[table t]\nfeature.a = int64\n", "table.t.topic"},
    {"[table t]\ntopic = x\n", "table.t.feature"},
    {"[table t]\ntopic = bad topic!\nfeature.a=int64\n", "table.t.topic"},
    {"[table t]\ntopic = x\nfeature.a = float128\n", "table.t.feature.a"},
    {"[table t]\ntopic = x\nfeature.9a = int64\n", "table.t.feature.9a"},
    {"[table t]\ntopic = x\nttl = forever\nfeature.a=int64\n", "table.t.ttl"},
    {"[table t]\ntopic = x\ncolour = red\nfeature.a=int64\n", "table.t.colour"},
    {"[table bad-name]\ntopic = x\n", "bad-name"},
    {"[table t]\ntopic=x\nfeature.a=int64\n[model m]\nlabel_topic = l\n", "model.m.table"},
    {"[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable = t\n", "model.m.label_topic"},
    {"[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable = u\nlabel_topic=l\n", "model.m.table"},
    {"[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable = t\nlabel_topic=x\n", "model.m.label_topic"},
    {"[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable = t\nlabel_topic=l\nfeatures = a, b\n", "model.m.features"},
    {"[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable = t\nlabel_topic=l\ntask = svm\n", "model.m.task"},
    {"this is not ini\n", "line 1"},
    {"key_without_section = 1\n", "key_without_section"},
    /* security: plain text off loopback only when asked for; TLS keys in pairs */
    {"[serve]\nlisten = 0.0.0.0:7070\n[table t]\ntopic=x\nfeature.a=int64\n", "serve.plaintext"},
    {"[serve]\nlisten = 0.0.0.0:7070\n[table t]\ntopic=x\nfeature.a=int64\n", "serve.tls_cert"},
    {"[serve]\nlisten = [::]:7070\n[table t]\ntopic=x\nfeature.a=int64\n", "serve.plaintext"},
    {"[serve]\nlisten = 10.1.2.3:7070\n[table t]\ntopic=x\nfeature.a=int64\n", "serve.plaintext"},
    {"[serve]\nlisten = featd.example:7070\n[table t]\ntopic=x\nfeature.a=int64\n", "serve.plaintext"},
    {"[serve]\ntls_cert = /c.pem\n[table t]\ntopic=x\nfeature.a=int64\n", "serve.tls_key"},
    {"[serve]\ntls_key = /k.pem\n[table t]\ntopic=x\nfeature.a=int64\n", "serve.tls_cert"},
    {"[serve]\ntls_client_ca = /ca.pem\n[table t]\ntopic=x\nfeature.a=int64\n", "serve.tls_client_ca"},
    {"[serve]\nplaintext = sometimes\n", "serve.plaintext"},
    {"[featctl]\ntls_cert = /c.pem\n[table t]\ntopic=x\nfeature.a=int64\n", "featctl.tls_key"},
    {"[auth]\ntokens = x\n", "auth.tokens"},
    /* declared twice: the second declaration would silently win */
    {"[table t]\ntopic=x\nfeature.a=int64\nfeature.a=int64\n", "table.t.feature.a"},
    {"[table t]\ntopic=x\nfeature.a=int64\nfeature.a=double\n", "table.t.feature.a"},
    {"[table t]\ntopic=x\nfeature.a=double\nfeature.b=bool\nfeature.a=float\n", "table.t.feature.a"},
    {"[table t]\ntopic=x\ntopic=y\nfeature.a=int64\n", "table.t.topic"},
    {"[table t]\ntopic=x\nfeature.a=int64\ndrift.a.psi=0.1\ndrift.a.psi=0.2\n", "table.t.drift.a.psi"},
    {"[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\nlabel_topic=k\n", "model.m.label_topic"},
    {"[kafka]\nembedded=false\nbootstrap.servers=h:1\nbootstrap.servers=h:2\n[table t]\ntopic=x\nfeature.a=int64\n",
     "kafka.bootstrap.servers"},
    {"[kafka]\nembedded=false\nembedded=false\nbootstrap.servers=h:1\n[table t]\ntopic=x\nfeature.a=int64\n",
     "kafka.embedded"},
    {"[table t]\ntopic=x\nfeature.a=int64\n[table t]\nttl=1h\n", "[table t]"},
    {"[table t]\ntopic=x\nfeature.a=int64\n[table t]\nfeature.b=int64\n", "[table t]"},
    {"[store]\nsync=true\n[table t]\ntopic=x\nfeature.a=int64\n[store]\nblock_cache=64MiB\n", "[store]"},
    {"[store]\nsync=true\n[store]\nblock_cache=64MiB\n[table t]\ntopic=x\nfeature.a=int64\n", "[store]"},
    {"[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\n[model m]\n", "[model m]"},
    /* an indented line continues the value above in libinih: featd would keep only it */
    {"[kafka]\nembedded=false\nbootstrap.servers = h:1,\n  h:2\n[table t]\ntopic=x\nfeature.a=int64\n",
     "kafka.bootstrap.servers"},
    /* models over several tables (MT: user keyed by user_id, merchant by merchant_id) */
#define MT "[table user]\nentity=user_id\ntopic=u\nfeature.a=int64\n[table merchant]\nentity=merchant_id\ntopic=me\n" \
           "feature.risk=double\n[model m]\ntable=user\nlabel_topic=l\n"
    {MT "features = a, merchant.risk\n", "model.m.features"},            /* merchant_id not in label_keys */
    {MT "features = a, merchant.risk\n", "merchant_id"},                 /* ...and the error names it */
    {MT "features = a, shop.risk\nlabel_keys = merchant_id\n", "model.m.features"},   /* unknown table */
    {MT "features = a, merchant.nope\nlabel_keys = merchant_id\n", "model.m.features"}, /* unknown feature */
    {MT "features = a, user.a\n", "model.m.features"},                   /* the same feature twice */
    {MT "label_keys = shop_id\n", "model.m.label_keys"},                 /* no table has that entity */
    {MT "label_keys = user_id\n", "model.m.label_keys"},                 /* the label's own key */
    {MT "label_keys = merchant_id, merchant_id\n", "model.m.label_keys"},
    {MT "label_keys = a-b\n", "model.m.label_keys"},
    /* type spellings that were never accepted */
    {"[table t]\ntopic=x\nfeature.a=str\n", "table.t.feature.a"},
    {"[table t]\ntopic=x\nfeature.a=boolean\n", "table.t.feature.a"},
    {"[table t]\ntopic=x\nfeature.a=Float64\n", "table.t.feature.a"},
};

START_TEST(bad_config_names_the_key) {
    char err[512] = "";
    feat_config_t *c = feat_config_parse(bad[_i].text, strlen(bad[_i].text), err, sizeof(err));
    ck_assert_msg(c == NULL, "case %d accepted", _i);
    ck_assert_msg(strstr(err, bad[_i].key) != NULL, "case %d: error \"%s\" does not name %s", _i, err, bad[_i].key);
    ck_assert_msg(strchr(err, '\n') == NULL, "case %d: error is not one line: %s", _i, err);
}
END_TEST

/* A model over several tables: TABLE.FEATURE resolved to (table, feature,
 * key), the primary table's features unqualified; tables keyed by the
 * primary entity (a user aggregation table) use the label's key. */
START_TEST(model_over_several_tables) {
    static const char *text =
        "[table user]\nentity=user_id\ntopic=u\nfeature.a=int64\nfeature.b=double\n"
        "[table user_agg]\nentity=user_id\ntopic=ua\nfeature.n=int64\n"
        "[table merchant]\nentity=merchant_id\ntopic=me\nfeature.risk=double\nfeature.cat=string\n"
        "[table shop]\nentity=shop_id\ntopic=sh\nfeature.size=int64\n"
        "[model fraud]\ntable=user\nlabel_topic=l\nfeatures = merchant.cat, user.b, user_agg.n, shop.size, a\n"
        "label_keys = shop_id, merchant_id\n"
        "[model plain]\ntable=user\nlabel_topic=l2\n";
    char err[512] = "";
    feat_config_t *c = feat_config_parse(text, strlen(text), err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    const feat_model_conf_t *m = feat_config_model(c, "fraud");
    ck_assert_int_eq(m->multi, 1);
    ck_assert_int_eq(m->nlabel_keys, 2);
    ck_assert_str_eq(m->label_keys[0], "shop_id");
    ck_assert_str_eq(m->label_keys[1], "merchant_id");
    ck_assert_int_eq(m->nfeatures, 5);
    static const char *const names[] = {"merchant.cat", "b", "user_agg.n", "shop.size", "a"};
    static const feat_model_feat_t want[] = {{2, 1, 1}, {0, 1, -1}, {1, 0, -1}, {3, 0, 0}, {0, 0, -1}};
    for (size_t j = 0; j < 5; j++) {
        ck_assert_str_eq(m->features[j], names[j]);
        ck_assert_int_eq(m->feats[j].table, want[j].table);
        ck_assert_int_eq(m->feats[j].feature, want[j].feature);
        ck_assert_int_eq(m->feats[j].key, want[j].key);
    }
    const feat_model_conf_t *p = feat_config_model(c, "plain"); /* single-table: as before */
    ck_assert_int_eq(p->multi, 0);
    ck_assert_int_eq(p->nlabel_keys, 0);
    ck_assert_int_eq(p->nfeatures, 2);
    ck_assert_str_eq(p->features[1], "b");
    ck_assert(p->feats[1].table == 0 && p->feats[1].feature == 1 && p->feats[1].key == -1);
    /* a same-entity table alone makes a model multi-table without label_keys */
    ck_assert_int_eq(feat_config_set(c, "model.plain.features", "a, user_agg.n", err, sizeof(err)), FEAT_OK);
    ck_assert_int_eq(feat_config_validate(c, err, sizeof(err)), FEAT_OK);
    ck_assert_int_eq(p->multi, 1);
    ck_assert(p->feats[1].table == 1 && p->feats[1].key == -1);
    feat_config_free(c);
}
END_TEST

/* Accepted: loopback listeners without TLS, any listener with TLS or with
 * plaintext = true. */
START_TEST(plaintext_only_when_explicit) {
    static const char *const ok[] = {
        "[serve]\nlisten = 127.0.0.1:7070\n",
        "[serve]\nlisten = 127.3.4.5:0\n",
        "[serve]\nlisten = localhost:7070\n",
        "[serve]\nlisten = [::1]:7070\n",
        "[serve]\nlisten = 0.0.0.0:7070\nplaintext = true\n",
        "[serve]\nlisten = 0.0.0.0:7070\ntls_cert = /c.pem\ntls_key = /k.pem\n",
        "[serve]\nlisten = [::]:7070\ntls_cert = /c.pem\ntls_key = /k.pem\ntls_client_ca = /ca.pem\n",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char text[512], err[512] = "";
        snprintf(text, sizeof(text), "%s[table t]\ntopic=x\nfeature.a=int64\n", ok[i]);
        feat_config_t *c = feat_config_parse(text, strlen(text), err, sizeof(err));
        ck_assert_msg(c != NULL, "case %zu refused: %s", i, err);
        feat_config_free(c);
    }
    /* defaults: loopback, no TLS, no tokens */
    char err[512] = "";
    const char *t = "[table t]\ntopic=x\nfeature.a=int64\n";
    feat_config_t *c = feat_config_parse(t, strlen(t), err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->serve_listen, "127.0.0.1:7070");
    ck_assert_str_eq(c->admin_listen, "127.0.0.1:7071");
    ck_assert_int_eq(c->serve_plaintext, 0);
    ck_assert_str_eq(c->serve_tls_cert, "");
    ck_assert_str_eq(c->auth_read_tokens_file, "");
    ck_assert_str_eq(c->auth_admin_tokens_file, "");
    feat_config_free(c);

    ck_assert_int_eq(feat_addr_is_loopback("127.0.0.1:1"), 1);
    ck_assert_int_eq(feat_addr_is_loopback("127.255.0.9:1"), 1);
    ck_assert_int_eq(feat_addr_is_loopback("LOCALHOST:1"), 1);
    ck_assert_int_eq(feat_addr_is_loopback("[::1]:1"), 1);
    ck_assert_int_eq(feat_addr_is_loopback("[::ffff:127.0.0.1]:1"), 1);
    ck_assert_int_eq(feat_addr_is_loopback("0.0.0.0:1"), 0);
    ck_assert_int_eq(feat_addr_is_loopback("128.0.0.1:1"), 0);
    ck_assert_int_eq(feat_addr_is_loopback("[::]:1"), 0);
    ck_assert_int_eq(feat_addr_is_loopback("[::2]:1"), 0);
    ck_assert_int_eq(feat_addr_is_loopback("localhost.evil.example:1"), 0);
    ck_assert_int_eq(feat_addr_is_loopback("127.0.0.1"), 0); /* no port: not host:port */
    ck_assert_int_eq(feat_addr_is_loopback(":1"), 0);
    ck_assert_int_eq(feat_addr_is_loopback(NULL), 0);
}
END_TEST

/* The message of a duplicate names the line of the second and the first. */
START_TEST(duplicates_say_where) {
    static const struct { const char *text, *msg; } cases[] = {
        {"[table user]\ntopic=x\nfeature.clicks_1h=int64\nfeature.clicks_1h=double\n",
         "table.user.feature.clicks_1h: declared twice: int64 at line 3, then double (config line 4)"},
        {"[serve]\nlisten=127.0.0.1:1\n\nlisten=127.0.0.1:2\n", "serve.listen: set twice, first at line 2 (config line 4)"},
        {"[table user]\ntopic=x\nfeature.a=int64\n\n[table user]\nttl=1h\n",
         "[table user]: section declared twice, first at line 1 (config line 5)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512] = "";
        ck_assert_ptr_null(feat_config_parse(cases[i].text, strlen(cases[i].text), err, sizeof(err)));
        ck_assert_str_eq(err, cases[i].msg);
    }
}
END_TEST

/* float, float64, int and long were always accepted: they stay, are documented,
 * and mean the 64-bit types. */
START_TEST(type_aliases_documented) {
    const char *t = "[table t]\ntopic=x\nfeature.a=float\nfeature.b=float64\nfeature.c=int\nfeature.d=long\n";
    char err[512] = "";
    feat_config_t *c = feat_config_parse(t, strlen(t), err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->tables[0].features[0].type, FEAT_FT_DOUBLE);
    ck_assert_int_eq(c->tables[0].features[1].type, FEAT_FT_DOUBLE);
    ck_assert_int_eq(c->tables[0].features[2].type, FEAT_FT_INT64);
    ck_assert_int_eq(c->tables[0].features[3].type, FEAT_FT_INT64);
    feat_config_free(c);
    feat_buf_t b = FEAT_BUF_INIT;
    feat_config_reference(&b);
    feat_buf_putc(&b, 0);
    for (const char *const *a = (const char *const[]){"`float`", "`float64`", "`int`", "`long`", NULL}; *a; a++)
        ck_assert_msg(strstr(b.data, *a) != NULL, "reference does not document %s", *a);
    feat_buf_free(&b);
}
END_TEST

/* Section headers longer than libinih keeps (49 bytes) would be cut silently,
 * and so would lines longer than 199 bytes. */
START_TEST(long_headers_and_lines_refused) {
    char text[1024], err[512] = "";
    const char *name = "t23456789012345678901234567890123456789012345"; /* 45 bytes: a valid name */
    snprintf(text, sizeof(text), "[table %s]\ntopic=x\nfeature.a=int64\n", name);
    ck_assert_ptr_null(feat_config_parse(text, strlen(text), err, sizeof(err)));
    ck_assert_msg(strstr(err, name) != NULL && !strchr(err, '\n'), "%s", err);
    char longv[300];
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = 0;
    snprintf(text, sizeof(text), "[table t]\ntopic=x\nfeature.a=int64\n[featd]\ndata_dir = /%s\n", longv);
    ck_assert_ptr_null(feat_config_parse(text, strlen(text), err, sizeof(err)));
    ck_assert_msg(strstr(err, "featd.data_dir") != NULL && strstr(err, "line 5") && !strchr(err, '\n'), "%s", err);
}
END_TEST

static char *write_tmp(const char *text) {
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* --set is applied before validation: it may supply what the file lacks, and a
 * bad value is refused naming the key. */
/* Aggregations: each window of an agg line becomes a feature after the
 * plain ones, named NAME_WINDOW with the window in its largest whole unit;
 * lines with the same function, field and parameter share one accumulator;
 * bad lines name table.T.agg.NAME in one line. */
#define AGG_HEAD "[table tx]\ntopic = tx\nfeature.amount = double\nfeature.items = int64\nfeature.shop = string\n"
START_TEST(aggregations_expand_and_refuse) {
    static const char *text = AGG_HEAD
        "agg_tile = 5m\n"
        "agg.spend = sum(amount) over 1h, 24h, lifetime\n"
        "agg.n = count(shop) over 10m\n"
        "agg.top = last_n(shop, 3) over 1d\n"
        "agg.q = approx_quantile( amount , 0.5 ) over 60m\n"
        "agg.big = sum(items) over 7d\n";
    char err[512] = "";
    feat_config_t *c = feat_config_parse(text, strlen(text), err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    const feat_table_conf_t *t = &c->tables[0];
    static const struct { const char *name; feat_ftype_t type; int64_t w; feat_agg_fn_t fn; } want[] = {
        {"amount", FEAT_FT_DOUBLE, 0, FEAT_AGG_NONE}, {"items", FEAT_FT_INT64, 0, FEAT_AGG_NONE},
        {"shop", FEAT_FT_STRING, 0, FEAT_AGG_NONE},
        {"spend_1h", FEAT_FT_DOUBLE, 3600000, FEAT_AGG_SUM}, {"spend_1d", FEAT_FT_DOUBLE, 86400000, FEAT_AGG_SUM},
        {"spend_lifetime", FEAT_FT_DOUBLE, 0, FEAT_AGG_SUM}, {"n_10m", FEAT_FT_INT64, 600000, FEAT_AGG_COUNT},
        {"top_1d", FEAT_FT_STRING, 86400000, FEAT_AGG_LAST_N}, {"q_1h", FEAT_FT_DOUBLE, 3600000, FEAT_AGG_APPROX_QUANTILE},
        {"big_7d", FEAT_FT_INT64, 7 * 86400000LL, FEAT_AGG_SUM},
    };
    ck_assert_uint_eq(t->nfeatures, sizeof(want) / sizeof(want[0]));
    ck_assert_uint_eq(t->nplain, 3);
    ck_assert_uint_eq(t->naggs, 5); /* sum(amount) once for three windows; sum(items) is another */
    for (size_t i = 0; i < t->nfeatures; i++) {
        ck_assert_str_eq(t->features[i].name, want[i].name);
        ck_assert_int_eq(t->features[i].type, want[i].type);
        ck_assert_int_eq(feat_feature_is_agg(t, i), want[i].fn != FEAT_AGG_NONE);
        if (want[i].fn == FEAT_AGG_NONE) continue;
        ck_assert_int_eq(t->features[i].window_ms, want[i].w);
        ck_assert_int_eq(t->aggs[t->features[i].agg].fn, want[i].fn);
    }
    ck_assert_uint_eq(t->aggs[t->features[7].agg].n, 3);
    ck_assert(t->aggs[t->features[8].agg].q == 0.5);
    ck_assert_int_eq(t->agg_max_window_ms, 7 * 86400000LL);
    ck_assert_int_eq(t->agg_lifetime, 1);
    char d[128];
    feat_agg_describe(t, 7, d, sizeof(d));
    ck_assert_str_eq(d, "last_n(shop, 3) over 1d");
    feat_agg_describe(t, 0, d, sizeof(d));
    ck_assert_str_eq(d, "");
    /* validating again (after a --set) expands once, plain features first */
    ck_assert_int_eq(feat_config_set(c, "table.tx.feature.extra", "bool", err, sizeof(err)), FEAT_OK);
    ck_assert_int_eq(feat_config_validate(c, err, sizeof(err)), FEAT_OK);
    ck_assert_uint_eq(c->tables[0].nplain, 4);
    ck_assert_str_eq(c->tables[0].features[3].name, "extra");
    ck_assert_str_eq(c->tables[0].features[4].name, "spend_1h");
    ck_assert_uint_eq(c->tables[0].nfeatures, sizeof(want) / sizeof(want[0]) + 1);
    feat_config_free(c);

    static const struct { const char *line, *says; } refused[] = {
        {"agg.x = sum(shop) over 1h", "string"},
        {"agg.x = median(amount) over 1h", "unknown function"},
        {"agg.x = sum(nope) over 1h", "unknown field"},
        {"agg.x = sum(amount) over 90s", "not a multiple"},
        {"agg.x = sum(amount) over 30d", "agg_max_tiles"},
        {"agg.x = sum(amount)", "over"},
        {"agg.x = sum(amount) over", "window"},
        {"agg.x = sum(amount) over 1h 2h", "commas"},
        {"agg.x = sum(amount) over 1h, 1h", "twice"},
        {"agg.x = sum(amount) over 0", "duration"},
        {"agg.x = last_n(shop) over 1h", "parameter"},
        {"agg.x = last_n(shop, 101) over 1h", "1..100"},
        {"agg.x = approx_quantile(amount, 1.5) over 1h", "[0, 1]"},
        {"agg.x = count(amount, 3) over 1h", ")"},
        {"agg.x = min(shop) over 1h", "double or int64"},
        {"agg.amount = count(amount) over 1h\nfeature.amount_1h = int64", "already has"},
        {"agg.9x = count(amount) over 1h", "not an aggregation name"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char buf[512];
        snprintf(buf, sizeof(buf), AGG_HEAD "%s\n", refused[i].line);
        err[0] = 0;
        ck_assert_msg(feat_config_parse(buf, strlen(buf), err, sizeof(err)) == NULL, "accepted: %s", refused[i].line);
        ck_assert_msg(strstr(err, "table.tx.agg.") && strstr(err, refused[i].says) && !strchr(err, '\n'),
                      "%s: \"%s\" should name table.tx.agg.* and say \"%s\"", refused[i].line, err, refused[i].says);
    }
}
END_TEST

START_TEST(set_before_validation) {
    char err[512] = "";
    char *path = write_tmp("[serve]\nlisten = 127.0.0.1:1\n[table t]\nfeature.a = int64\n");
    ck_assert_ptr_null(feat_config_load(path, err, sizeof(err)));
    ck_assert_msg(strstr(err, "table.t.topic") != NULL, "%s", err);
    const char *supply[] = {"table.t.topic=events", "serve.listen=127.0.0.1:2"};
    feat_config_t *c = feat_config_load_set(path, supply, 2, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->tables[0].topic, "events");
    ck_assert_str_eq(c->serve_listen, "127.0.0.1:2"); /* --set beats the file */
    feat_config_free(c);
    static const struct { const char *set, *key; } bad_sets[] = {
        {"table.t.topic=bad topic!", "table.t.topic"},
        {"ingest.batch_max=0", "ingest.batch_max"},
        {"table.t.feature.b=float128", "table.t.feature.b"},
        {"kafka.embedded=false", "kafka.bootstrap.servers"}, /* valid value, invalid config */
        {"nosuchkey=1", "nosuchkey"},
        {"serve.listen", "serve.listen"},                    /* no '=' */
    };
    for (size_t i = 0; i < sizeof(bad_sets) / sizeof(bad_sets[0]); i++) {
        const char *sets[] = {"table.t.topic=events", bad_sets[i].set};
        err[0] = 0;
        ck_assert_ptr_null(feat_config_load_set(path, sets, 2, err, sizeof(err)));
        ck_assert_msg(strstr(err, bad_sets[i].key) != NULL, "--set %s: \"%s\"", bad_sets[i].set, err);
        ck_assert_msg(!strchr(err, '\n'), "%s", err);
    }
    const char *twice[] = {"table.t.topic=events", "table.t.topic=other"};
    ck_assert_ptr_null(feat_config_load_set(path, twice, 2, err, sizeof(err)));
    ck_assert_msg(strstr(err, "table.t.topic") && strstr(err, "twice"), "%s", err);
    unlink(path);
}
END_TEST

START_TEST(kafka_security_keys_pass) {
    static const char *const keys[] = {"security.protocol", "ssl.ca.location", "ssl.certificate.location",
                                       "ssl.key.location", "ssl.key.password", "ssl.ca.pem", "ssl.keystore.location",
                                       "ssl.endpoint.identification.algorithm", "sasl.mechanism", "sasl.mechanisms",
                                       "sasl.username", "sasl.password", "sasl.oauthbearer.token.endpoint.url",
                                       "sasl.kerberos.keytab"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ck_assert_msg(feat_config_kafka_allowed(keys[i]), "%s refused", keys[i]);
    ck_assert_int_eq(feat_config_kafka_allowed("enable.auto.commit"), 0);
    ck_assert_int_eq(feat_config_kafka_allowed("ssl.engine.location"), 0); /* loads a shared object */
}
END_TEST

START_TEST(missing_file_is_a_clear_error) {
    char err[512];
    ck_assert_ptr_null(feat_config_load("/nonexistent/featd.ini", err, sizeof(err)));
    ck_assert_msg(strstr(err, "/nonexistent/featd.ini") != NULL, "%s", err);
}
END_TEST

START_TEST(parsers) {
    int64_t v;
    ck_assert_int_eq(feat_parse_duration_ms("250ms", &v), 0); ck_assert_int_eq(v, 250);
    ck_assert_int_eq(feat_parse_duration_ms("1.5s", &v), 0);  ck_assert_int_eq(v, 1500);
    ck_assert_int_eq(feat_parse_duration_ms("2h", &v), 0);    ck_assert_int_eq(v, 7200000);
    ck_assert_int_eq(feat_parse_duration_ms("0", &v), 0);     ck_assert_int_eq(v, 0);
    ck_assert_int_ne(feat_parse_duration_ms("5", &v), 0);
    ck_assert_int_ne(feat_parse_duration_ms("-1s", &v), 0);
    ck_assert_int_ne(feat_parse_duration_ms("1y", &v), 0);
    ck_assert_int_eq(feat_parse_size("4096", &v), 0);  ck_assert_int_eq(v, 4096);
    ck_assert_int_eq(feat_parse_size("64KiB", &v), 0); ck_assert_int_eq(v, 65536);
    ck_assert_int_eq(feat_parse_size("2M", &v), 0);    ck_assert_int_eq(v, 2097152);
    ck_assert_int_ne(feat_parse_size("-4", &v), 0);
    ck_assert_int_ne(feat_parse_size("1.5", &v), 0);   /* fractional bytes */
    ck_assert_int_ne(feat_parse_size("12 parsecs", &v), 0);
}
END_TEST

START_TEST(reference_lists_every_key) {
    feat_buf_t b = FEAT_BUF_INIT;
    feat_config_reference(&b);
    feat_buf_putc(&b, 0);
    const char *keys[] = {"`data_dir`", "`log_level`", "`block_cache`", "`batch_max`", "`max_future`",
                          "`embedded`", "`partitions`", "`topic`", "`ttl`", "`label_topic`", "`task`",
                          "`bootstrap.servers`", "[table NAME]", "[model NAME]"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ck_assert_msg(strstr(b.data, keys[i]) != NULL, "reference lacks %s", keys[i]);
    feat_buf_free(&b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, parses_values_and_defaults);
    tcase_add_test(tc, model_over_several_tables);
    tcase_add_loop_test(tc, bad_config_names_the_key, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, missing_file_is_a_clear_error);
    tcase_add_test(tc, plaintext_only_when_explicit);
    tcase_add_test(tc, kafka_security_keys_pass);
    tcase_add_test(tc, parsers);
    tcase_add_test(tc, reference_lists_every_key);
    tcase_add_test(tc, duplicates_say_where);
    tcase_add_test(tc, type_aliases_documented);
    tcase_add_test(tc, long_headers_and_lines_refused);
    tcase_add_test(tc, set_before_validation);
    tcase_add_test(tc, aggregations_expand_and_refuse);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
