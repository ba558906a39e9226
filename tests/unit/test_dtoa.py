#!/usr/bin/python3
"""common/dtoa (feat_dtoa) against Python's repr, which prints the shortest decimal that reads
back as the same double (David Gay's algorithm): 400,000 random bit patterns over every exponent,
200,000 doubles near "nice" decimals (prices, rates, counts: the values features hold),
subnormals, powers of two and ten, the boundaries of fixed notation, and the specials. The
expected text is repr's with a trailing ".0" dropped ("5" for 5.0); every output must also read
back as the same double.

  test_dtoa.py --build-dir build
"""
import argparse
import math
import os
import random
import struct
import subprocess
import sys


def expect(d):
    if math.isnan(d):
        return "nan"
    s = repr(d)
    return s[:-2] if s.endswith(".0") else s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir")
    args = ap.parse_args()
    rnd = random.Random(20261205)
    vals = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 5e-324, -5e-324, 2.2250738585072014e-308,
            2.225073858507201e-308, 1.7976931348623157e308, 0.1, 0.2, 0.3, 1 / 3, 2 / 3, 100.0, 1e15, 1e16, 1e17,
            9007199254740993.0, 123456789012345680.0, 0.0001, 0.00001, 0.000123, 1e-4, 9.999999999999999e-05,
            9999999999999998.0, 1e21, 1e22, 1e23, 5e-310, 4.9406564584124654e-324]
    vals += [2.0 ** e for e in range(-1074, 1024)] + [10.0 ** e for e in range(-323, 309)]
    for _ in range(400000):
        bits = rnd.getrandbits(64)
        d = struct.unpack("<d", struct.pack("<Q", bits))[0]
        vals.append(d)
    for _ in range(200000):
        k = rnd.randint(0, 8)
        d = round(rnd.uniform(-1e6, 1e6) / 10 ** rnd.randint(0, 8), k)
        vals += [d, math.nextafter(d, math.inf)]
    vals += [rnd.gauss(0, 1) for _ in range(50000)]
    tool = os.path.join(args.build_dir, "tests", "dtoa_tool")
    inp = "".join(f"{struct.unpack('<Q', struct.pack('<d', d))[0]:016x}\n" for d in vals)
    out = subprocess.run([tool], input=inp, capture_output=True, text=True, check=True).stdout.split("\n")
    bad = 0
    for d, got in zip(vals, out):
        want = expect(d)
        if got != want or (not math.isnan(d) and float(got) != d):
            bad += 1
            if bad <= 20:
                print(f"{d!r}: featd {got!r}, expected {want!r}")
    print(f"{len(vals)} doubles, {bad} differ")
    sys.exit(1 if bad or len(out) < len(vals) else 0)


if __name__ == "__main__":
    main()
