/* serve/auth.c — see auth.h. */
#include "serve/auth.h"
#include "rpc/tls.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define WORDS (FEAT_TOKEN_MAX / 8)

typedef struct slot {
    uint64_t w[WORDS];          /* the token, zero-padded to FEAT_TOKEN_MAX bytes */
    uint32_t len;
    uint32_t bits;              /* 1 = read, 3 = admin (admin includes read) */
} slot_t;

struct feat_auth {
    size_t n;
    slot_t *slots;
};

/* RFC 6750 b64token characters. */
static int token_char(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

static feat_err_t add_token(feat_auth_t *a, const char *t, size_t len, uint32_t bits) {
    for (size_t i = 0; i < a->n; i++) { /* load time only: plain comparison is fine */
        if (a->slots[i].len == len && memcmp(a->slots[i].w, t, len) == 0) {
            a->slots[i].bits |= bits;
            return FEAT_OK;
        }
    }
    if (a->n >= FEAT_TOKENS_MAX) return FEAT_ERR_TOO_LARGE;
    slot_t *ns = realloc(a->slots, (a->n + 1) * sizeof(*ns));
    if (!ns) return FEAT_ERR_NOMEM;
    a->slots = ns;
    memset(&ns[a->n], 0, sizeof(ns[a->n]));
    memcpy(ns[a->n].w, t, len);
    ns[a->n].len = (uint32_t)len;
    ns[a->n].bits = bits;
    a->n++;
    return FEAT_OK;
}

static feat_err_t load_file(feat_auth_t *a, const char *path, const char *key, uint32_t bits, char *err,
                            size_t errlen) {
    struct stat sb;
    FILE *f = feat_secret_open(path, key, "auth", "chmod 600 or 640 it", &sb, err, errlen);
    if (!f) return FEAT_ERR_CONFIG;
    char line[FEAT_TOKEN_MAX + 64];
    int lineno = 0, found = 0;
    feat_err_t rc = FEAT_OK;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t l = strlen(line);
        int whole = l > 0 && line[l - 1] == '\n';
        if (!whole && !feof(f)) { /* longer than any token: skip the rest of it */
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n') {
            }
            if (line[strspn(line, " \t")] == '#') continue;
            feat_errf(err, errlen, "%s: %s line %d: token longer than %d characters", key, path, lineno, FEAT_TOKEN_MAX);
            rc = FEAT_ERR_CONFIG;
            break;
        }
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
            line[--l] = 0;
        const char *t = line + strspn(line, " \t");
        l = strlen(t);
        if (l == 0 || t[0] == '#') continue;
        int ok = l >= FEAT_TOKEN_MIN && l <= FEAT_TOKEN_MAX;
        for (size_t i = 0; ok && i < l; i++) ok = token_char((unsigned char)t[i]);
        if (!ok) {
            feat_errf(err, errlen, "%s: %s line %d: a token is %d to %d characters of A-Z a-z 0-9 - . _ ~ + / = "
                    "(one per line; # starts a comment line)", key, path, lineno, FEAT_TOKEN_MIN, FEAT_TOKEN_MAX);
            rc = FEAT_ERR_CONFIG;
            break;
        }
        feat_err_t r = add_token(a, t, l, bits);
        if (r) {
            feat_errf(err, errlen, "%s: %s line %d: %s", key, path, lineno,
                    r == FEAT_ERR_TOO_LARGE ? "too many tokens (at most 4096 in all)" : "out of memory");
            rc = FEAT_ERR_CONFIG;
            break;
        }
        found++;
    }
    if (rc == FEAT_OK && ferror(f)) {
        feat_errf(err, errlen, "%s: cannot read %s", key, path);
        rc = FEAT_ERR_CONFIG;
    }
    if (rc == FEAT_OK && !found) {
        feat_errf(err, errlen, "%s: %s holds no token (one per line; # starts a comment line)", key, path);
        rc = FEAT_ERR_CONFIG;
    }
    memset(line, 0, sizeof(line));
    fclose(f);
    return rc;
}

feat_err_t feat_auth_load(const char *read_file, const char *read_key, const char *admin_file,
                          const char *admin_key, feat_auth_t **out, char *err, size_t errlen) {
    *out = NULL;
    int have_read = read_file && *read_file, have_admin = admin_file && *admin_file;
    if (!have_read && !have_admin) return FEAT_OK;
    feat_auth_t *a = calloc(1, sizeof(*a));
    if (!a) {
        feat_errf(err, errlen, "%s: out of memory", have_read ? read_key : admin_key);
        return FEAT_ERR_CONFIG;
    }
    if ((have_read && load_file(a, read_file, read_key, 1, err, errlen)) ||
        (have_admin && load_file(a, admin_file, admin_key, 3, err, errlen))) {
        feat_auth_destroy(a);
        return FEAT_ERR_CONFIG;
    }
    *out = a;
    return FEAT_OK;
}

feat_auth_level_t feat_auth_check(const feat_auth_t *a, const char *token, size_t len) {
    if (!a || !token) return FEAT_AUTH_NONE;
    uint64_t buf[WORDS];
    memset(buf, 0, sizeof(buf));
    memcpy(buf, token, len < FEAT_TOKEN_MAX ? len : FEAT_TOKEN_MAX);
    uint64_t over = len > FEAT_TOKEN_MAX; /* never equal to a stored token */
    uint32_t bits = 0;
    for (size_t i = 0; i < a->n; i++) {
        const slot_t *s = &a->slots[i];
        uint64_t d = over | ((uint64_t)s->len ^ (uint64_t)(len & 0xffffffffu));
        for (size_t k = 0; k < WORDS; k++) d |= s->w[k] ^ buf[k];
        /* eq = 1 when d == 0, without a branch on d */
        uint32_t eq = (uint32_t)(((d | (0 - d)) >> 63) ^ 1u);
        bits |= s->bits & (0u - eq);
    }
    return (bits & 2) ? FEAT_AUTH_ADMIN : (bits & 1) ? FEAT_AUTH_READ : FEAT_AUTH_NONE;
}

size_t feat_auth_count(const feat_auth_t *a, feat_auth_level_t level) {
    size_t n = 0;
    for (size_t i = 0; a && i < a->n; i++)
        n += (level == FEAT_AUTH_ADMIN) ? a->slots[i].bits == 3 : a->slots[i].bits == 1;
    return n;
}

size_t feat_auth_admin_token(const feat_auth_t *a, char *out, size_t cap) {
    for (size_t i = 0; a && i < a->n; i++) {
        if (a->slots[i].bits != 3 || a->slots[i].len >= cap) continue;
        memcpy(out, a->slots[i].w, a->slots[i].len);
        out[a->slots[i].len] = 0;
        return a->slots[i].len;
    }
    if (cap) out[0] = 0;
    return 0;
}

const char *feat_auth_bearer(const char *h, size_t *len) {
    if (!h) return NULL;
    while (*h == ' ') h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) return NULL;
    h += 7;
    while (*h == ' ' || *h == '\t') h++;
    size_t l = strlen(h);
    while (l > 0 && (h[l - 1] == ' ' || h[l - 1] == '\t')) l--;
    if (l == 0) return NULL;
    *len = l;
    return h;
}

void feat_auth_destroy(feat_auth_t *a) {
    if (!a) return;
    if (a->slots) {
        volatile unsigned char *p = (volatile unsigned char *)a->slots;
        for (size_t i = 0; i < a->n * sizeof(slot_t); i++) p[i] = 0;
    }
    free(a->slots);
    free(a);
}
