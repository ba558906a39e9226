/* common/log.c — see log.h. */
#include "common/log.h"
#include "common/err.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int feat_log_min_level = FEAT_LOG_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp; /* NULL → stderr; guarded by log_lock */

static const char *const level_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};

void feat_log_vwrite(feat_log_level_t level, const char *component, const char *fmt, va_list ap) {
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000,
                     level_names[level <= FEAT_LOG_OFF ? level : FEAT_LOG_ERROR],
                     component ? component : "featd");
    if (n < 0) return;
    if ((size_t)n < sizeof(line)) {
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        if (m > 0) n += m;
    }
    if ((size_t)n >= sizeof(line) - 1) n = (int)sizeof(line) - 2;
    while (n > 0 && line[n - 1] == '\n') n--;
    line[n++] = '\n';
    pthread_mutex_lock(&log_lock);
    FILE *fp = log_fp ? log_fp : stderr;
    fwrite(line, 1, (size_t)n, fp);
    fflush(fp);
    pthread_mutex_unlock(&log_lock);
}

void feat_log_write(feat_log_level_t level, const char *component, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    feat_log_vwrite(level, component, fmt, ap);
    va_end(ap);
}

int feat_log_set_level(feat_log_level_t level) {
    int old = feat_log_min_level;
    feat_log_min_level = (int)level;
    return old;
}

int feat_log_level_parse(const char *s) {
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0) return i;
    if (strcasecmp(s, "warning") == 0) return FEAT_LOG_WARN;
    return -1;
}

feat_err_t feat_log_set_file(const char *path) {
    FILE *fp = NULL;
    if (path) {
        fp = fopen(path, "a");
        if (!fp) return FEAT_ERR_IO;
    }
    pthread_mutex_lock(&log_lock);
    FILE *old = log_fp;
    log_fp = fp;
    pthread_mutex_unlock(&log_lock);
    if (old) fclose(old);
    return FEAT_OK;
}
