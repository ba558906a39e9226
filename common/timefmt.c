/* common/timefmt.c — see timefmt.h. */
#include "common/timefmt.h"
#include "common/err.h"

#include <stdio.h>
#include <time.h>


static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, size_t n, size_t at, size_t cnt, int *out) {
    if (at + cnt > n) return 0;
    int v = 0;
    for (size_t i = 0; i < cnt; i++) {
        char c = s[at + i];
        if (c < '0' || c > '9') return 0;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 1;
}

feat_err_t feat_parse_rfc3339(const char *s, size_t n, int64_t *ms) {
    int Y, M, D, h, mi, sec;
    if (!digits(s, n, 0, 4, &Y) || n < 20 || s[4] != '-' || !digits(s, n, 5, 2, &M) || s[7] != '-' ||
        !digits(s, n, 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s, n, 11, 2, &h) || s[13] != ':' || !digits(s, n, 14, 2, &mi) || s[16] != ':' ||
        !digits(s, n, 17, 2, &sec))
        return FEAT_ERR_INVALID;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || mi > 59 || sec > 60) return FEAT_ERR_INVALID;
    int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M == 2 && D == 29 && !leap) return FEAT_ERR_INVALID;
    size_t i = 19;
    int64_t frac_ms = 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t start = i;
        int64_t scale = 100;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            frac_ms += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start) return FEAT_ERR_INVALID;
    }
    int64_t off_min = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (!digits(s, n, i + 1, 2, &oh) || i + 3 >= n || s[i + 3] != ':' || !digits(s, n, i + 4, 2, &om) ||
            oh > 23 || om > 59)
            return FEAT_ERR_INVALID;
        off_min = (oh * 60 + om) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return FEAT_ERR_INVALID;
    }
    if (i != n) return FEAT_ERR_INVALID;
    int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + (sec == 60 ? 59 : sec) - off_min * 60;
    *ms = secs * 1000 + frac_ms;
    return FEAT_OK;
}


void feat_format_rfc3339(int64_t ms, char *out, size_t cap) {
    int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int frac = (int)(ms - s * 1000);
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

const char *feat_format_duration(int64_t ms, char *out, size_t cap) {
    static const struct { const char *name; uint64_t ms; } units[] = {
        {"y", 365ull * 86400000}, {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
    };
    enum { NUNITS = sizeof(units) / sizeof(units[0]) };
    if (!out || cap == 0) return out;
    /* magnitude in uint64: -INT64_MIN does not fit an int64 */
    uint64_t mag = ms < 0 ? (uint64_t)(-(ms + 1)) + 1 : (uint64_t)ms;
    const char *sign = ms < 0 ? "-" : "";
    size_t u = 0;
    while (u + 1 < NUNITS && mag < units[u].ms) u++;
    uint64_t a = mag / units[u].ms;
    uint64_t b = u + 1 < NUNITS ? mag % units[u].ms / units[u + 1].ms : 0;
    if (b) snprintf(out, cap, "%s%llu %s %llu %s", sign, (unsigned long long)a, units[u].name, (unsigned long long)b,
                    units[u + 1].name);
    else snprintf(out, cap, "%s%llu %s", sign, (unsigned long long)a, units[u].name);
    return out;
}
