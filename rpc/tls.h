/*
 * rpc/tls.h — reads and checks the PEM files of gRPC TLS, for the server
 * (serve.tls_*) and for clients (featctl --tls-*), before gRPC sees them.
 *
 * gRPC only finds out that a certificate is damaged or that a key belongs to
 * another certificate when it sets up the listener or the first handshake,
 * and then says "cannot listen" or "handshake failed".  feat_tls_load()
 * parses every file with OpenSSL first, so a bad file stops start-up with one
 * line naming the config key (or flag) that named it.
 *
 * feat_tls_server_new() makes the same certificate and key (and client CA)
 * a TLS context for featd's other listener, the HTTP/JSON API (admin/api.c).
 *
 * Linked into featd_rpc (OpenSSL is already gRPC's TLS library); no
 * OpenSSL type leaves tls.c.
 */
#ifndef FEAT_RPC_TLS_H
#define FEAT_RPC_TLS_H

#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/err.h"

/* Files to load; a NULL or "" path is not loaded.  *_name is how messages
 * call the file: a config key ("serve.tls_key") or a flag ("--tls-key"). */
typedef struct feat_tls_files {
    const char *cert, *cert_name;   /* certificate chain, leaf first */
    const char *key, *key_name;     /* private key of the leaf (unencrypted) */
    const char *ca, *ca_name;       /* CA certificates */
} feat_tls_files_t;

/* PEM text of the loaded files, NUL-terminated, owned by the struct; NULL =
 * not loaded.  Free with feat_tls_pem_free (which wipes the key). */
typedef struct feat_tls_pem {
    char *cert;
    char *key;
    char *ca;
} feat_tls_pem_t;

#define FEAT_TLS_MAX_FILE (1024 * 1024) /* bytes of one PEM file */

/* Opens a file that holds secrets (a key, tokens) named by config key or flag
 * `name`: it must be a regular file.  Fills *sb; when advice is not NULL and
 * every user may read the file, logs a warning (as `component`) ending in
 * advice.  NULL + a one-line err naming `name` on failure. */
FILE *feat_secret_open(const char *path, const char *name, const char *component, const char *advice,
                       struct stat *sb, char *err, size_t errlen);

/* Reads and checks every named file: readable, at most FEAT_TLS_MAX_FILE,
 * at least one PEM certificate (cert, ca), an unencrypted private key (key)
 * that matches the first certificate of cert.  Logs a warning (not an error)
 * when the leaf certificate has expired or is not valid yet, and when the key
 * file is readable by every user.  Returns FEAT_OK, or FEAT_ERR_CONFIG with one
 * line naming the key in errstr and *out left empty. */
feat_err_t feat_tls_load(const feat_tls_files_t *files, feat_tls_pem_t *out, char *errstr, size_t errlen);

void feat_tls_pem_free(feat_tls_pem_t *p); /* NULL members are fine; leaves them NULL */

/* A TLS server context (an SSL_CTX) from loaded PEM text: pem->cert's chain
 * and pem->key; with pem->ca, every client must present a certificate one of
 * those CAs signed (mutual TLS).  TLS 1.2 or later.  NULL with errstr. */
typedef struct feat_tls_server feat_tls_server_t;
feat_tls_server_t *feat_tls_server_new(const feat_tls_pem_t *pem, char *errstr, size_t errlen);
/* One connection's TLS state (an SSL *, for libevent's
 * bufferevent_openssl_socket_new, which then owns it); NULL out of memory.
 * Thread-safe. */
void *feat_tls_server_session(feat_tls_server_t *t);
void feat_tls_server_free(feat_tls_server_t *t); /* NULL is fine */

#endif
