/*
 * common/worker.h — starting and joining featd's own threads.
 *
 * Every long-lived thread a module runs (ingest's consumer and store writer,
 * the drift monitor, the prediction-log writer, the gRPC workers, the
 * embedded broker's control port, the demo producer) is started with
 * feat_worker_start, which names it, so `top -H`, perf and gdb say whose it
 * is, and is joined with feat_worker_join by the module's stop function.
 * Threads of librdkafka ("rdk:..."), gRPC and RocksDB keep their own names.
 */
#ifndef FEAT_COMMON_WORKER_H
#define FEAT_COMMON_WORKER_H

#include <pthread.h>

#include "common/err.h"

/* The longest thread name Linux keeps (16 bytes with the NUL). */
#define FEAT_WORKER_NAME_MAX 15

/* Runs fn(arg) on a new joinable thread, stored in *thr, named name (cut to
 * FEAT_WORKER_NAME_MAX bytes; a name the system refuses is not an error).
 * FEAT_OK, or FEAT_ERR_NOMEM when no thread could be created: nothing
 * started, *thr undefined. */
feat_err_t feat_worker_start(pthread_t *thr, const char *name, void *(*fn)(void *), void *arg);

/* Waits until the thread started into thr returns; its result is dropped.
 * Once per started thread, never from that thread itself. */
void feat_worker_join(pthread_t thr);

#endif
