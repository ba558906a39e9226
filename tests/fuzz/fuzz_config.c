/*
 * tests/fuzz/fuzz_config.c — libFuzzer target: featd's INI config parsed and
 * validated from memory (feat_config_parse(), common/config.c, libinih).
 *
 * Input: the config file's text.  A refusal must come with a one-line error;
 * an accepted config must hold what validation promises (valid names,
 * feature counts in range, models on declared tables with resolved feature
 * lists and hyper-parameter grids), must survive feat_config_set() with a
 * value taken from the input, and must build a decoder.
 */
#include "fuzz_util.h"

#include "common/config.h"
#include "ingest/decode.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    return 0;
}

static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > FEAT_MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return 0;
    }
    return 1;
}

static void check_config(const feat_config_t *c) {
    FUZZ_CHECK(c->ntables >= 1, "no tables");
    FUZZ_CHECK(c->data_dir && *c->data_dir, "empty data_dir");
    for (size_t i = 0; i < c->ntables; i++) {
        const feat_table_conf_t *t = &c->tables[i];
        FUZZ_CHECK(name_ok(t->name), "table name \"%s\"", t->name);
        FUZZ_CHECK(t->topic && *t->topic, "table %s without topic", t->name);
        FUZZ_CHECK(t->nfeatures >= 1 && t->nfeatures <= FEAT_MAX_FEATURES, "table %s: %zu features", t->name, t->nfeatures);
        FUZZ_CHECK(t->ttl_ms >= 0, "table %s ttl %lld", t->name, (long long)t->ttl_ms);
        FUZZ_CHECK(feat_config_table(c, t->name) == t, "table %s declared twice", t->name);
        for (size_t f = 0; f < t->nfeatures; f++) {
            FUZZ_CHECK(name_ok(t->features[f].name), "feature name \"%s\"", t->features[f].name);
            FUZZ_CHECK(t->features[f].type >= FEAT_FT_DOUBLE && t->features[f].type <= FEAT_FT_STRING,
                       "feature %s type %d", t->features[f].name, (int)t->features[f].type);
            FUZZ_CHECK(feat_table_feature_index(t, t->features[f].name, strlen(t->features[f].name)) == (int)f,
                       "feature %s of %s declared twice", t->features[f].name, t->name);
        }
    }
    for (size_t i = 0; i < c->nmodels; i++) {
        const feat_model_conf_t *m = &c->models[i];
        FUZZ_CHECK(name_ok(m->name), "model name \"%s\"", m->name);
        const feat_table_conf_t *t = feat_config_table(c, m->table);
        FUZZ_CHECK(t != NULL, "model %s on unknown table", m->name);
        FUZZ_CHECK(m->nfeatures >= 1 && m->nfeatures <= t->nfeatures, "model %s: %zu features", m->name, m->nfeatures);
        for (size_t f = 0; f < m->nfeatures; f++)
            FUZZ_CHECK(feat_table_feature_index(t, m->features[f], strlen(m->features[f])) >= 0,
                       "model %s feature %s not in table", m->name, m->features[f]);
        FUZZ_CHECK(m->nlr >= 1 && m->nlr <= 16 && m->nl2 >= 1 && m->nl2 <= 16 && m->nepochs >= 1 && m->nepochs <= 16 &&
                       m->nhidden >= 1 && m->nhidden <= 16,
                   "model %s grids %zu %zu %zu %zu", m->name, m->nlr, m->nl2, m->nepochs, m->nhidden);
        for (size_t k = 0; k < m->nepochs; k++) FUZZ_CHECK(m->epochs[k] >= 1, "model %s epochs 0", m->name);
        for (size_t k = 0; k < m->nhidden; k++) FUZZ_CHECK(m->hidden[k] >= 1, "model %s hidden 0", m->name);
        for (size_t k = 0; k < c->ntables; k++)
            FUZZ_CHECK(strcmp(c->tables[k].topic, m->label_topic) != 0, "model %s labels on a feature topic", m->name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    err[0] = 0;
    char *text = malloc(size ? size : 1);
    FUZZ_CHECK(text != NULL, "malloc");
    memcpy(text, data, size);
    feat_config_t *c = feat_config_parse(text, size, err, sizeof(err));
    if (!c) {
        FUZZ_CHECK(err[0] != 0, "refused without an error message");
        FUZZ_CHECK(strchr(err, '\n') == NULL, "error message is not one line: %s", err);
        free(text);
        return 0;
    }
    check_config(c);
    feat_decode_conf_t dc;
    feat_decode_conf_from_config(c, &dc);
    feat_decoder_t *d = feat_decoder_new(&dc);
    FUZZ_CHECK(d != NULL, "decoder for a valid config");
    feat_decoder_destroy(d);
    /* an override taken from the input's last line, then validation again */
    const char *nl = memrchr(text, '\n', size);
    size_t off = nl ? (size_t)(nl - text) + 1 : 0;
    char line[256];
    size_t ll = size - off < sizeof(line) - 1 ? size - off : sizeof(line) - 1;
    memcpy(line, text + off, ll);
    line[ll] = 0;
    char *eq = strchr(line, '=');
    if (eq && !memchr(line, 0, ll)) {
        *eq = 0;
        err[0] = 0;
        if (feat_config_set(c, line, eq + 1, err, sizeof(err)) == FEAT_OK) {
            if (feat_config_validate(c, err, sizeof(err)) == FEAT_OK) check_config(c);
            else FUZZ_CHECK(err[0] != 0, "validation failed without an error message");
        } else {
            FUZZ_CHECK(err[0] != 0, "set failed without an error message");
        }
    }
    feat_config_free(c);
    free(text);
    return 0;
}
