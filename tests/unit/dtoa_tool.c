/* tests/unit/dtoa_tool.c — for test_dtoa.py: reads doubles as 16 hex digits
 * of their bits, one per line, and writes feat_dtoa of each, one per line. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/dtoa.h"

int main(void) {
    char line[64], out[FEAT_DTOA_MAX];
    while (fgets(line, sizeof(line), stdin)) {
        uint64_t bits;
        double d;
        if (sscanf(line, "%" SCNx64, &bits) != 1) return 2;
        memcpy(&d, &bits, sizeof(d));
        feat_dtoa(d, out);
        puts(out);
    }
    return 0;
}
