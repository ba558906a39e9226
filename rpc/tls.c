/* serve/tls.c — see tls.h. */
#include "rpc/tls.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The newest OpenSSL error as text (and an empty queue afterwards: gRPC uses
 * the same library in this process and must not find our leftovers). */
static const char *ssl_reason(char *buf, size_t len) {
    unsigned long e = ERR_peek_last_error();
    if (e) ERR_error_string_n(e, buf, len);
    else snprintf(buf, len, "no detail");
    ERR_clear_error();
    return buf;
}

FILE *feat_secret_open(const char *path, const char *name, const char *component, const char *advice,
                       struct stat *sb, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        feat_errf(err, errlen, "%s: cannot read %s: %s", name, path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), sb) != 0 || !S_ISREG(sb->st_mode)) {
        feat_errf(err, errlen, "%s: %s is not a regular file", name, path);
        fclose(f);
        return NULL;
    }
    if (advice && (sb->st_mode & S_IROTH))
        feat_log(FEAT_LOG_WARN, component, "%s: %s is readable by every user (mode %03o); %s", name, path,
                 (unsigned)(sb->st_mode & 0777), advice);
    return f;
}

/* Reads path into a NUL-terminated string (NULL + err naming `name`). */
static char *read_file(const char *path, const char *name, int warn_others, char *err, size_t errlen) {
    struct stat sb;
    FILE *f = feat_secret_open(path, name, "tls", warn_others ? "chmod 600 it" : NULL, &sb, err, errlen);
    if (!f) return NULL;
    if (sb.st_size > FEAT_TLS_MAX_FILE) {
        feat_errf(err, errlen, "%s: %s is larger than %d bytes; not a PEM file", name, path, FEAT_TLS_MAX_FILE);
        fclose(f);
        return NULL;
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        feat_errf(err, errlen, "%s: out of memory", name);
        fclose(f);
        return NULL;
    }
    size_t n = fread(buf, 1, (size_t)sb.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        feat_errf(err, errlen, "%s: cannot read %s", name, path);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (strlen(buf) != n) {
        feat_errf(err, errlen, "%s: %s contains a NUL byte; not a PEM file", name, path);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Certificates in pem: count and, when leaf is not NULL, the first one
 * (the caller frees it). */
static int count_certs(const char *pem, X509 **leaf) {
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (!b) return 0;
    int n = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (n == 0 && leaf) *leaf = x;
        else X509_free(x);
        n++;
    }
    BIO_free(b);
    ERR_clear_error(); /* the loop ends on "no start line" */
    return n;
}

/* No passphrase prompts: an encrypted key is refused. */
static int no_password(char *buf, int size, int rwflag, void *u) {
    (void)buf; (void)size; (void)rwflag; (void)u;
    return 0;
}

static void wipe(char *s) {
    if (!s) return;
    volatile char *p = s;
    while (*p) *p++ = 0;
}

void feat_tls_pem_free(feat_tls_pem_t *p) {
    if (!p) return;
    wipe(p->key);
    free(p->key);
    free(p->cert);
    free(p->ca);
    p->key = p->cert = p->ca = NULL;
}

feat_err_t feat_tls_load(const feat_tls_files_t *f, feat_tls_pem_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    char why[256];
    X509 *leaf = NULL;
    EVP_PKEY *pkey = NULL;
    if (f->cert && *f->cert) {
        out->cert = read_file(f->cert, f->cert_name, 0, err, errlen);
        if (!out->cert) goto fail;
        if (count_certs(out->cert, &leaf) == 0) {
            feat_errf(err, errlen, "%s: %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", f->cert_name, f->cert);
            goto fail;
        }
        if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
            feat_log(FEAT_LOG_WARN, "tls", "%s: the certificate in %s has expired; clients will refuse it",
                     f->cert_name, f->cert);
        else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
            feat_log(FEAT_LOG_WARN, "tls", "%s: the certificate in %s is not valid yet; clients will refuse it",
                     f->cert_name, f->cert);
    }
    if (f->key && *f->key) {
        out->key = read_file(f->key, f->key_name, 1, err, errlen);
        if (!out->key) goto fail;
        BIO *b = BIO_new_mem_buf(out->key, -1);
        pkey = b ? PEM_read_bio_PrivateKey(b, NULL, no_password, NULL) : NULL;
        BIO_free(b);
        if (!pkey) {
            feat_errf(err, errlen, "%s: %s holds no unencrypted PEM private key (%s)", f->key_name, f->key,
                    ssl_reason(why, sizeof(why)));
            goto fail;
        }
        if (leaf && X509_check_private_key(leaf, pkey) != 1) {
            feat_errf(err, errlen, "%s: the key in %s does not match the certificate in %s (%s)", f->key_name, f->key,
                    f->cert, f->cert_name);
            ERR_clear_error();
            goto fail;
        }
    }
    if (f->ca && *f->ca) {
        out->ca = read_file(f->ca, f->ca_name, 0, err, errlen);
        if (!out->ca) goto fail;
        if (count_certs(out->ca, NULL) == 0) {
            feat_errf(err, errlen, "%s: %s holds no PEM CA certificate (-----BEGIN CERTIFICATE-----)", f->ca_name, f->ca);
            goto fail;
        }
    }
    X509_free(leaf);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return FEAT_OK;
fail:
    X509_free(leaf);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    feat_tls_pem_free(out);
    return FEAT_ERR_CONFIG;
}

/* ---- a server context for the HTTP/JSON API ------------------------------------------------ */

feat_tls_server_t *feat_tls_server_new(const feat_tls_pem_t *pem, char *err, size_t errlen) {
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    BIO *bio = NULL;
    X509 *x = NULL;
    EVP_PKEY *key = NULL;
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) goto fail;
    if (!(bio = BIO_new_mem_buf(pem->cert, -1)) || !(x = PEM_read_bio_X509(bio, NULL, no_password, NULL)) ||
        SSL_CTX_use_certificate(ctx, x) != 1)
        goto fail;
    X509_free(x);
    while ((x = PEM_read_bio_X509(bio, NULL, no_password, NULL))) /* the rest of the chain */
        if (SSL_CTX_add_extra_chain_cert(ctx, x) != 1) goto fail;  /* which then owns x */
    ERR_clear_error(); /* the end of the file */
    BIO_free(bio);
    if (!(bio = BIO_new_mem_buf(pem->key, -1)) || !(key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL)) ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    EVP_PKEY_free(key);
    key = NULL;
    BIO_free(bio);
    bio = NULL;
    if (pem->ca) {
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        if (!(bio = BIO_new_mem_buf(pem->ca, -1))) goto fail;
        int n = 0;
        while ((x = PEM_read_bio_X509(bio, NULL, no_password, NULL))) {
            int ok = X509_STORE_add_cert(store, x);
            X509_free(x);
            if (!ok) goto fail;
            n++;
        }
        ERR_clear_error();
        x = NULL;
        if (!n) goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        BIO_free(bio);
        bio = NULL;
    }
    return (feat_tls_server_t *)ctx;
fail:
    snprintf(err, errlen, "TLS for the HTTP/JSON API: %s", ssl_reason(why, sizeof(why)));
    EVP_PKEY_free(key);
    X509_free(x);
    BIO_free(bio);
    SSL_CTX_free(ctx);
    return NULL;
}

void *feat_tls_server_session(feat_tls_server_t *t) { return SSL_new((SSL_CTX *)t); }

void feat_tls_server_free(feat_tls_server_t *t) { SSL_CTX_free((SSL_CTX *)t); }
