/* common/textwidth.h — how many terminal columns UTF-8 text takes, so that
 * featctl's tables line up when values hold CJK or emoji.
 *
 * A built-in table (Unicode 14.0, from common/textwidth_gen.py) rather than
 * libc's wcwidth(): that needs a UTF-8 LC_CTYPE, which featctl run from cron,
 * systemd or a C-locale shell does not have.  Rules: 0 columns for controls,
 * combining marks and format characters (except U+00AD); 2 for East Asian
 * Wide and Fullwidth characters (emoji with emoji presentation among them);
 * 1 otherwise.  Sequences are not shaped: "❤" + U+FE0F counts 1, while some
 * terminals draw it 2 wide.  Pure functions; any thread. */
#ifndef FEAT_COMMON_TEXTWIDTH_H
#define FEAT_COMMON_TEXTWIDTH_H

#include <stddef.h>
#include <stdint.h>

/* Columns code point cp takes: 0, 1 or 2.  Values above U+10FFFF and
 * surrogates count 1 (a terminal shows a replacement character). */
int feat_cp_width(uint32_t cp);

/* Columns the n bytes at s take.  Invalid UTF-8 counts one column per byte
 * it could not decode. */
size_t feat_text_width(const char *s, size_t n);

#endif
