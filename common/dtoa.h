/*
 * common/dtoa.h — a double as the shortest decimal that reads back as the
 * same double, written as Python's repr writes it ("0.1", "12.5", "1e-05",
 * "1.5e+16", "inf", "nan"), except that an integral value keeps no ".0"
 * ("5", "-0").  Fixed notation while the decimal point falls within 16
 * digits of the first digit and at most 3 zeros follow the point (0.0001);
 * scientific notation otherwise, with at least two exponent digits.
 *
 * Grisu3 (Loitsch, "Printing Floating-Point Numbers Quickly and Accurately
 * with Integers", PLDI 2010) finds the digits with 64-bit integers for
 * about 99.5% of doubles and knows when it cannot; the rest go through
 * snprintf and strtod (15, 16, then 17 digits).  tests/unit/test_dtoa.py
 * compares it with Python's repr.
 */
#ifndef FEAT_COMMON_DTOA_H
#define FEAT_COMMON_DTOA_H

#define FEAT_DTOA_MAX 32 /* bytes of the longest result, its NUL included */

/* Writes d into out (NUL-terminated); returns its length. */
int feat_dtoa(double d, char out[FEAT_DTOA_MAX]);

#endif
