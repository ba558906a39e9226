/*
 * admin/webhook.h — POSTs JSON documents (alerts) to an http:// URL from the
 * daemon's main event loop.
 *
 * feat_webhook_post() may be called from any thread and never blocks: it
 * copies the body into a bounded queue and wakes the loop.  The loop sends
 * one request at a time over a kept-alive connection; on an error or a
 * non-2xx reply it retries the same body after 0.5 s, doubling to 30 s.
 * When the queue is full the oldest body is dropped and counted.
 * Requires evthread_use_pthreads() before the event base was created.
 */
#ifndef FEAT_ADMIN_WEBHOOK_H
#define FEAT_ADMIN_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"

struct event_base;
typedef struct feat_webhook feat_webhook_t;

typedef struct feat_webhook_conf {
    const char *url;            /* drift.webhook: an http:// URL; copied */
    size_t queue_max;           /* drift.webhook_queue: bodies held; past it the oldest is dropped (0 = 1) */
} feat_webhook_conf_t;

/* base borrowed: the loop that sends, outliving the webhook.  metrics NULL =
 * the process-wide registry.  NULL with errstr on failure (a URL that is not
 * http://: "drift.webhook: ...").  No thread of its own: nothing to start or
 * stop; it sends while the loop runs. */
feat_webhook_t *feat_webhook_new(const feat_webhook_conf_t *conf, struct event_base *base, feat_metrics_t *metrics,
                                 char *errstr, size_t errlen);
void feat_webhook_post(feat_webhook_t *w, const char *body, size_t len);
/* Delivered, dropped and failed attempts so far. */
void feat_webhook_counts(feat_webhook_t *w, uint64_t *delivered, uint64_t *dropped, uint64_t *failures);
/* Call from the loop's thread (or after it stopped). */
void feat_webhook_destroy(feat_webhook_t *w); /* NULL is fine */

#endif
