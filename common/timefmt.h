/* common/timefmt.h — RFC 3339 times <-> milliseconds since the epoch. */
#ifndef FEAT_COMMON_TIMEFMT_H
#define FEAT_COMMON_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Parses "2024-11-24T00:00:00.123Z" (fraction optional; Z or +hh:mm/-hh:mm)
 * to ms since the epoch.  FEAT_OK or FEAT_ERR_INVALID. */
int feat_parse_rfc3339(const char *s, size_t n, int64_t *ms);
/* Formats ms as "2024-11-24T00:00:00.123Z" into out (at least 32 bytes). */
void feat_format_rfc3339(int64_t ms, char *out, size_t cap);

#endif
