/*
 * train/audit.c — the registry consistency audit (feat_models_audit, see
 * models.h): reads a store's registry without serving it and reports one
 * JSON line per version and per model.  Used by featd-inspect "models".
 */
#include "train/models_internal.h"

#include "common/hash.h"
#include "common/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct audit_ctx {
    feat_store_t *st;
    const feat_model_conf_t *mc;
    feat_models_line_fn *line;
    void *arg;
    feat_buf_t out;
    uint64_t *versions;     /* the model's versions seen so far */
    size_t nv, capv;
    int problems;
} audit_ctx_t;

static void audit_emit(audit_ctx_t *c) {
    c->line(c->arg, c->out.data, c->out.len);
    feat_buf_reset(&c->out);
}

static int ref_count(void *arg, const char *key, size_t klen, const char *val, size_t vlen) {
    (void)key; (void)klen; (void)val;
    if (vlen >= 2) (*(size_t *)arg)++;
    return 0;
}

/* Why a version record is unusable ("" when it is not): its header, its
 * metadata JSON, its model blob, its references (*nref counted). */
static void check_version(audit_ctx_t *c, uint64_t version, const char *val, size_t vlen, size_t *nref, char *err,
                          size_t errlen) {
    const unsigned char *p = (const unsigned char *)val;
    uint32_t jl = vlen >= 5 ? feat_get_le32(p + 1) : 0;
    feat_model_t *m = NULL;
    feat_json_tok_t *toks = malloc(4096 * sizeof(*toks));
    err[0] = 0;
    if (vlen < 5 || p[0] != 1 || jl > vlen - 5) snprintf(err, errlen, "record header is corrupt");
    else if (!toks || feat_json_parse(val + 5, jl, toks, 4096, 16, NULL, NULL) != FEAT_OK)
        snprintf(err, errlen, "metadata is not JSON");
    else if (feat_model_deserialize(p + 5 + jl, vlen - 5 - jl, &m, err, errlen) != FEAT_OK && !err[0])
        snprintf(err, errlen, "model blob does not decode");
    free(toks);
    feat_model_destroy(m);
    *nref = 0;
    if (err[0]) return;
    char prefix[512];
    size_t pl = feat_reg_rkey(prefix, sizeof(prefix), c->mc->name, version, "");
    if (pl) feat_store_scan_blobs(c->st, FEAT_CF_REFERENCES, prefix, pl, ref_count, nref);
    /* a version registered from no rows (an import before any label) has none to keep */
    if (!*nref && !memmem(val + 5, jl, "\"rows\":0,", 9)) snprintf(err, errlen, "no reference distributions");
}

static int audit_version(void *arg, const char *key, size_t klen, const char *val, size_t vlen) {
    audit_ctx_t *c = arg;
    size_t ml = strlen(c->mc->name);
    if (klen != ml + 11) return 0;
    uint64_t version = feat_get_be64((const unsigned char *)key + ml + 3);
    char err[256];
    size_t nref;
    check_version(c, version, val, vlen, &nref, err, sizeof(err));
    if (err[0]) c->problems++;
    if (c->nv == c->capv) {
        size_t nc = c->capv ? c->capv * 2 : 16;
        uint64_t *nvv = realloc(c->versions, nc * sizeof(uint64_t));
        if (nvv) { c->versions = nvv; c->capv = nc; }
    }
    if (c->nv < c->capv) c->versions[c->nv++] = version;
    feat_buf_printf(&c->out, "{\"kind\":\"model_version\",\"model\":\"%s\",\"version\":%llu,\"ok\":%s,\"error\":",
                    c->mc->name, (unsigned long long)version, err[0] ? "false" : "true");
    feat_buf_json_str(&c->out, err, strlen(err));
    feat_buf_printf(&c->out, ",\"bytes\":%zu,\"references\":%zu,\"meta\":", vlen, nref);
    if (err[0]) feat_buf_puts(&c->out, "null");
    else feat_buf_append(&c->out, val + 5, feat_get_le32((const unsigned char *)val + 1));
    feat_buf_putc(&c->out, '}');
    audit_emit(c);
    return 0;
}

/* Why the aliases al (have: a record was found) do not fit the versions seen
 * ("" when they do). */
static void check_aliases(const audit_ctx_t *c, const aliases_t *al, int have, char *err, size_t errlen) {
    uint64_t named[2] = {al->champion, al->challenger}, maxv = 0;
    for (size_t k = 0; k < c->nv; k++)
        if (c->versions[k] > maxv) maxv = c->versions[k];
    for (int k = 0; k < 2 && !err[0]; k++) {
        int found = !named[k];
        for (size_t j = 0; j < c->nv && !found; j++) found = c->versions[j] == named[k];
        if (!found)
            snprintf(err, errlen, "%s v%llu has no version record", k ? "challenger" : "champion",
                     (unsigned long long)named[k]);
    }
    if (!err[0] && have && al->next <= maxv)
        snprintf(err, errlen, "next version %llu is not above the newest, %llu", (unsigned long long)al->next,
                 (unsigned long long)maxv);
}

/* The model's versions, then its aliases line. */
static void audit_model(audit_ctx_t *c) {
    char key[FEAT_MAX_NAME + 16];
    c->nv = 0;
    if (feat_store_scan_blobs(c->st, FEAT_CF_MODELS, key, feat_reg_vprefix(key, c->mc->name), audit_version, c) != FEAT_OK)
        c->problems++;
    feat_buf_t b = FEAT_BUF_INIT;
    int have = feat_store_get_blob(c->st, FEAT_CF_MODELS, key, feat_reg_akey(key, c->mc->name), &b) == FEAT_OK;
    if (!have && !c->nv) {
        feat_buf_free(&b);
        return; /* never trained */
    }
    aliases_t al;
    memset(&al, 0, sizeof(al));
    char err[160] = "";
    if (!have) snprintf(err, sizeof(err), "versions exist but no aliases record");
    else if (feat_aliases_decode(&al, (const unsigned char *)b.data, b.len) != FEAT_OK)
        snprintf(err, sizeof(err), "aliases record is corrupt");
    feat_buf_free(&b);
    check_aliases(c, &al, have, err, sizeof(err));
    if (err[0]) c->problems++;
    feat_buf_printf(&c->out, "{\"kind\":\"model_aliases\",\"model\":\"%s\",\"champion\":%llu,\"challenger\":%llu,"
                             "\"next\":%llu,\"history\":[", c->mc->name, (unsigned long long)al.champion,
                    (unsigned long long)al.challenger, (unsigned long long)al.next);
    for (size_t k = 0; k < al.nhist; k++) feat_buf_printf(&c->out, "%s%llu", k ? "," : "", (unsigned long long)al.hist[k]);
    feat_buf_printf(&c->out, "],\"versions\":%zu,\"ok\":%s,\"error\":", c->nv, err[0] ? "false" : "true");
    feat_buf_json_str(&c->out, err, strlen(err));
    feat_buf_putc(&c->out, '}');
    audit_emit(c);
    free(al.hist);
}

int feat_models_audit(feat_store_t *st, const feat_models_conf_t *conf, feat_models_line_fn *line, void *arg) {
    audit_ctx_t c;
    memset(&c, 0, sizeof(c));
    c.st = st;
    c.line = line;
    c.arg = arg;
    for (size_t i = 0; i < conf->nmodels; i++) {
        c.mc = &conf->models[i];
        audit_model(&c);
    }
    feat_buf_free(&c.out);
    free(c.versions);
    return c.problems;
}
