"""featctl's display width (common/textwidth.c) against Python's unicodedata
for every code point U+0000..U+10FFFF: the binary is run with --dump and each
width compared with the rules, computed from east_asian_width() and
category() (harness.char_width).  Python's Unicode version must be the one the table was made
from (common/textwidth_gen.py), else the test says so and is skipped."""
import os
import subprocess
import sys
import unicodedata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as H  # noqa: E402

TABLE_UNICODE = "14.0.0"


def want(cp):
    return H.char_width(chr(cp))


def main():
    args = H.parse_args()
    if unicodedata.unidata_version != TABLE_UNICODE:
        print(f"SKIPPED: Python has Unicode {unicodedata.unidata_version}, the table is {TABLE_UNICODE}")
        sys.exit(77)
    out = subprocess.run([os.path.join(args.build_dir, "tests", "test_textwidth"), "--dump"],
                         capture_output=True, check=True).stdout.decode().split("\n")
    got = {}
    for line in out:
        if line:
            cp, w = line.split()
            got[int(cp, 16)] = int(w)
    assert len(got) == 0x110000, f"{len(got)} code points dumped"
    bad = [(cp, got[cp], want(cp)) for cp in range(0x110000) if got[cp] != want(cp)]
    for cp, g, w in bad[:20]:
        print(f"U+{cp:04X} {unicodedata.name(chr(cp), '?')}: featd says {g}, unicodedata {w}")
    assert not bad, f"{len(bad)} code points differ"
    counts = {w: sum(1 for v in got.values() if v == w) for w in (0, 1, 2)}
    H.log(f"all 1114112 code points agree with unicodedata {unicodedata.unidata_version}: {counts}")


if __name__ == "__main__":
    main()
