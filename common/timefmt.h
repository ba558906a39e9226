/* common/timefmt.h — RFC 3339 times <-> milliseconds since the epoch, and
 * durations for people to read ("2 y 10 d", "3 m 12 s"). */
#ifndef FEAT_COMMON_TIMEFMT_H
#define FEAT_COMMON_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Parses "2024-11-24T00:00:00.123Z" (fraction optional; Z or +hh:mm/-hh:mm)
 * to ms since the epoch.  FEAT_OK or FEAT_ERR_INVALID. */
feat_err_t feat_parse_rfc3339(const char *s, size_t n, int64_t *ms);
/* Formats ms as "2024-11-24T00:00:00.123Z" into out (at least 32 bytes). */
void feat_format_rfc3339(int64_t ms, char *out, size_t cap);

/* Room for any duration feat_format_duration writes ("-292471208 y 247 d"). */
#define FEAT_DURATION_MAX 32

/* Formats a duration of ms milliseconds the way featd's progress line and
 * featctl print them: its two largest units, truncated (never rounded up),
 * the second left out when it is zero.  Units: y (365 d), d, h, m (minutes),
 * s, ms.  Examples: 0 → "0 ms", 23 → "23 ms", 1500 → "1 s 500 ms",
 * 192000 → "3 m 12 s", 3600000 → "1 h", 63970716214 → "2 y 10 d".
 * Negative durations (an event time in the future) get a leading '-'.
 * Writes at most cap bytes, terminated (cap >= FEAT_DURATION_MAX never
 * truncates); returns out, so a call can be a printf argument. */
const char *feat_format_duration(int64_t ms, char *out, size_t cap);

#endif
