/* common/worker.c — see worker.h. */
#include "common/worker.h"

#include <string.h>

feat_err_t feat_worker_start(pthread_t *thr, const char *name, void *(*fn)(void *), void *arg) {
    if (pthread_create(thr, NULL, fn, arg) != 0) return FEAT_ERR_NOMEM;
    char n[FEAT_WORKER_NAME_MAX + 1];
    size_t len = strlen(name);
    if (len > FEAT_WORKER_NAME_MAX) len = FEAT_WORKER_NAME_MAX;
    memcpy(n, name, len);
    n[len] = 0;
    pthread_setname_np(*thr, n); /* only for people and tools: a refusal changes nothing */
    return FEAT_OK;
}

void feat_worker_join(pthread_t thr) { pthread_join(thr, NULL); }
