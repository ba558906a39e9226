/* common/clock.h — wall-clock and monotonic time, header-only. */
#ifndef FEAT_COMMON_CLOCK_H
#define FEAT_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (event-time scale). */
static inline int64_t feat_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic nanoseconds, for durations and latencies only. */
static inline uint64_t feat_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps ms milliseconds (a signal may cut it short). */
static inline void feat_sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
