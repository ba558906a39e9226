/*
 * common/err.h — featd's one error enum.
 *
 * Every module returns feat_err_t (FEAT_OK = 0, failures negative).  Errors of
 * third-party libraries (RocksDB errptr strings, librdkafka codes, gRPC
 * statuses, errno) are translated where they enter or leave a module; none of
 * them crosses a module boundary.  serve/ maps these codes to gRPC statuses in
 * exactly one function.
 *
 * Header-only and valid C and C++, so train/'s standalone math core and CUDA
 * sources can use it without linking common/.
 */
#ifndef FEAT_COMMON_ERR_H
#define FEAT_COMMON_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum feat_err {
    FEAT_OK = 0,
    FEAT_ERR_INVALID = -1,      /* bad argument or malformed input */
    FEAT_ERR_NOT_FOUND = -2,    /* no such table, feature, model, key */
    FEAT_ERR_NOMEM = -3,        /* allocation failed */
    FEAT_ERR_IO = -4,           /* storage or file-system failure */
    FEAT_ERR_CONFIG = -5,       /* configuration rejected */
    FEAT_ERR_UNAVAILABLE = -6,  /* shutting down or dependency down */
    FEAT_ERR_TOO_LARGE = -7,    /* over a configured size limit */
    FEAT_ERR_UNIMPLEMENTED = -8,/* declared, not built yet */
    FEAT_ERR_EXISTS = -9,       /* already exists / already running */
    FEAT_ERR_TIMEOUT = -10,     /* deadline passed */
    FEAT_ERR_CORRUPT = -11,     /* stored bytes fail to decode */
    FEAT_ERR_PERMISSION = -12,  /* caller not allowed */
    FEAT_ERR_UNAUTHENTICATED = -13, /* caller not identified */
    FEAT_ERR_KAFKA = -14,       /* broker or client failure */
    FEAT_ERR_NO_DEVICE = -15,   /* no usable GPU */
    FEAT_ERR_STATE = -16        /* call not valid in the current state */
} feat_err_t;

/* A short static English description of err; never NULL. */
static inline const char *feat_err_str(int err) {
    switch (err) {
    case FEAT_OK: return "success";
    case FEAT_ERR_INVALID: return "invalid argument";
    case FEAT_ERR_NOT_FOUND: return "not found";
    case FEAT_ERR_NOMEM: return "out of memory";
    case FEAT_ERR_IO: return "I/O error";
    case FEAT_ERR_CONFIG: return "bad configuration";
    case FEAT_ERR_UNAVAILABLE: return "unavailable";
    case FEAT_ERR_TOO_LARGE: return "too large";
    case FEAT_ERR_UNIMPLEMENTED: return "not implemented";
    case FEAT_ERR_EXISTS: return "already exists";
    case FEAT_ERR_TIMEOUT: return "deadline exceeded";
    case FEAT_ERR_CORRUPT: return "corrupt data";
    case FEAT_ERR_PERMISSION: return "permission denied";
    case FEAT_ERR_UNAUTHENTICATED: return "unauthenticated";
    case FEAT_ERR_KAFKA: return "kafka error";
    case FEAT_ERR_NO_DEVICE: return "no GPU device";
    case FEAT_ERR_STATE: return "wrong state";
    default: return "unknown error";
    }
}

/* Formats a one-line error message into err (len bytes) for the caller to
 * report, like snprintf; does nothing when err is NULL or len is 0. */
#if defined(__GNUC__)
static inline void feat_errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#endif
static inline void feat_errf(char *err, size_t len, const char *fmt, ...) {
    if (!err || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

#ifdef __cplusplus
}
#endif
#endif
