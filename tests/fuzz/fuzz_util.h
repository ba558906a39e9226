/*
 * tests/fuzz/fuzz_util.h — helpers shared by featd's libFuzzer targets.
 *
 * FUZZ_CHECK(cond, ...) turns a broken invariant into a crash (abort) that
 * libFuzzer records like any sanitizer finding; fuzz_json_valid() checks
 * that featd's own output is well-formed JSON with the project's strict
 * tokenizer.
 */
#ifndef FEAT_TESTS_FUZZ_UTIL_H
#define FEAT_TESTS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/utf8.h"

#define FUZZ_CHECK(cond, ...)                                                          \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            abort();                                                                   \
        }                                                                              \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* 1 if text[0..len) is one valid JSON document (tokens allocated here). */
static inline int fuzz_json_valid(const char *text, size_t len) {
    size_t ntoks = len + 1;
    feat_json_tok_t *toks = malloc(ntoks * sizeof(*toks));
    if (!toks) return 0;
    feat_err_t e = feat_json_parse(text, len, toks, ntoks, 64, NULL, NULL);
    free(toks);
    return e == FEAT_OK;
}

#endif
