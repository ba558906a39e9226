/* tests/unit/testutil.h — small helpers shared by the Check tests. */
#ifndef FEAT_TESTS_TESTUTIL_H
#define FEAT_TESTS_TESTUTIL_H

#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int tu_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

/* Creates a fresh directory under /tmp; returns a static-lifetime copy. */
static inline char *tu_tmpdir(void) {
    char tmpl[] = "/tmp/featd-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void tu_rmrf(const char *dir) {
    if (dir) nftw(dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
