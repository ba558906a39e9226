/*
 * serve/auth.h — bearer tokens for featd's gRPC methods and admin HTTP pages.
 *
 * [auth] read_tokens_file and admin_tokens_file name files of tokens, one per
 * line (blank lines and lines starting with # are ignored), read once at
 * start-up.  A read token may call FEAT_RPC_READ methods and read the admin
 * HTTP pages; an admin token may do everything.  A token listed in both files
 * is an admin token.
 *
 * feat_auth_check() compares the presented token with every stored one in
 * full, over FEAT_TOKEN_MAX bytes each, without early exit: its running time
 * does not depend on the token's content nor on which stored token (if any)
 * it matches.  It allocates nothing and may be called from any thread; the
 * feat_auth_t is read-only after feat_auth_load().
 */
#ifndef FEAT_SERVE_AUTH_H
#define FEAT_SERVE_AUTH_H

#include <stddef.h>

#include "common/err.h"

typedef enum feat_auth_level {
    FEAT_AUTH_NONE = 0,         /* no token, or not a known one */
    FEAT_AUTH_READ = 1,
    FEAT_AUTH_ADMIN = 2
} feat_auth_level_t;

typedef struct feat_auth feat_auth_t;

#define FEAT_TOKEN_MIN 16       /* bytes; shorter tokens are refused at load */
#define FEAT_TOKEN_MAX 256      /* bytes */
#define FEAT_TOKENS_MAX 4096    /* tokens in both files together */

/* Loads the token files (NULL or "" = not configured).  *out = NULL and
 * FEAT_OK when neither is configured (authentication off).  On a missing, unreadable
 * or empty file, or a malformed token, returns FEAT_ERR_CONFIG with one line
 * naming read_key / admin_key (the config keys) and the line number, never
 * the token itself.  Logs a warning when a file is readable by every user. */
feat_err_t feat_auth_load(const char *read_file, const char *read_key, const char *admin_file,
                          const char *admin_key, feat_auth_t **out, char *errstr, size_t errlen);

/* The level of token[0..len) (token may be NULL: FEAT_AUTH_NONE). */
feat_auth_level_t feat_auth_check(const feat_auth_t *a, const char *token, size_t len);

/* Tokens loaded at exactly this level. */
size_t feat_auth_count(const feat_auth_t *a, feat_auth_level_t level);

/* Copies an admin token (NUL-terminated) into out: what this instance
 * presents when it calls another instance of its cluster on its own behalf
 * (the trainer gathering a training set), since the instances share their
 * token files.  Its length, 0 when there is none or it does not fit cap. */
size_t feat_auth_admin_token(const feat_auth_t *a, char *out, size_t cap);

/* The token of an HTTP "Authorization" header value: "Bearer X" (scheme in
 * any case, spaces around X ignored) → X and *len; NULL otherwise. */
const char *feat_auth_bearer(const char *header, size_t *len);

void feat_auth_destroy(feat_auth_t *a); /* wipes the tokens; NULL is fine */

#endif
