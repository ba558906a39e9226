/*
 * common/log.h — one thread-safe log sink for the whole daemon.
 *
 * feat_log(FEAT_LOG_INFO, "ingest", "assigned %d partitions", n) writes one
 * line "2026-11-24T10:00:00.123Z INFO  ingest: assigned 4 partitions" to the
 * sink (stderr unless feat_log_set_file() says otherwise).  When the level is
 * off the macro returns before evaluating its arguments, so logging costs a
 * load and a compare.  librdkafka's log callback (ingest/kconf.c) and gRPC's
 * log function (rpc/server.c) are routed here by their owning modules.
 * RocksDB's info log is not: its C API (7.8) takes no log callback, so it
 * stays in RocksDB's own LOG file beside the data, limited to fatal lines
 * (store/store.c says why); store/ logs every store error here itself.
 */
#ifndef FEAT_COMMON_LOG_H
#define FEAT_COMMON_LOG_H

#include <stdarg.h>

#include "common/err.h"

typedef enum feat_log_level {
    FEAT_LOG_DEBUG = 0,
    FEAT_LOG_INFO = 1,
    FEAT_LOG_WARN = 2,
    FEAT_LOG_ERROR = 3,
    FEAT_LOG_OFF = 4
} feat_log_level_t;

extern int feat_log_min_level; /* lines below this level are dropped */

#define feat_log(level, component, ...)                                      \
    do {                                                                     \
        if ((int)(level) < feat_log_min_level) break;                        \
        feat_log_write((level), (component), __VA_ARGS__);                   \
    } while (0)

void feat_log_write(feat_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void feat_log_vwrite(feat_log_level_t level, const char *component, const char *fmt, va_list ap);

/* Sets the minimum level; returns the previous one. */
int feat_log_set_level(feat_log_level_t level);

/* Parses "debug", "info", "warn", "error", "off"; -1 when unknown. */
int feat_log_level_parse(const char *s);

/* Appends to path instead of stderr (NULL → back to stderr).  FEAT_OK or FEAT_ERR_IO. */
feat_err_t feat_log_set_file(const char *path);

#endif
