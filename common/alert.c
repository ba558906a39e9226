/*
 * common/alert.c — the alert bus (see alert.h).
 */
#include "common/alert.h"

#include <stdatomic.h>
#include <stdlib.h>

typedef struct sink {
    const char *name;
    feat_alert_sink_fn *fn;
    void *arg;
} sink_t;

struct feat_alert_bus {
    sink_t sinks[FEAT_ALERT_MAX_SINKS];
    int nsinks;
    atomic_uint_least64_t published;
};

feat_alert_bus_t *feat_alert_bus_new(void) {
    feat_alert_bus_t *bus = calloc(1, sizeof(*bus));
    if (bus) atomic_init(&bus->published, 0);
    return bus;
}

void feat_alert_bus_destroy(feat_alert_bus_t *bus) { free(bus); }

feat_err_t feat_alert_subscribe(feat_alert_bus_t *bus, const char *name, feat_alert_sink_fn *fn, void *arg) {
    if (!bus || !fn) return FEAT_ERR_INVALID;
    if (bus->nsinks == FEAT_ALERT_MAX_SINKS) return FEAT_ERR_TOO_LARGE;
    bus->sinks[bus->nsinks++] = (sink_t){.name = name, .fn = fn, .arg = arg};
    return FEAT_OK;
}

void feat_alert_publish(feat_alert_bus_t *bus, const feat_alert_t *a) {
    if (!bus || !a) return;
    atomic_fetch_add_explicit(&bus->published, 1, memory_order_relaxed);
    for (int i = 0; i < bus->nsinks; i++) bus->sinks[i].fn(bus->sinks[i].arg, a);
}

uint64_t feat_alert_count(const feat_alert_bus_t *bus) {
    return bus ? atomic_load_explicit(&bus->published, memory_order_relaxed) : 0;
}
