#!/usr/bin/python3
"""Prints common/dtoa.c's table of cached powers of ten: 10^k for k = -348, -340, ..., 340 as
f * 2^e with f a 64-bit integer whose top bit is set, rounded to nearest (Loitsch's Grisu
paper, section 5). Exact integer arithmetic; run it and paste between the markers in dtoa.c."""


def cached(k):
    if k >= 0:
        n, d = 10 ** k, 1
    else:
        n, d = 1, 10 ** -k
    # choose e so that 2^63 <= n / d / 2^e < 2^64
    e = n.bit_length() - d.bit_length() - 64
    while True:
        num, den = (n, d << e) if e >= 0 else (n << -e, d)
        f = (2 * num + den) // (2 * den)  # round half up
        if f >= 1 << 64:
            e += 1
            continue
        if f < 1 << 63:
            e -= 1
            continue
        return f, e


for k in range(-348, 341, 8):
    f, e = cached(k)
    print(f"    {{0x{f:016x}ull, {e}, {k}}},")
