#!/usr/bin/python3
"""Generates the width tables of common/textwidth.c from Python's unicodedata
(Debian 12's /usr/bin/python3: Unicode 14.0):

    /usr/bin/python3 common/textwidth_gen.py > /tmp/tables.inc   # then paste

A code point is 0 columns wide when it is a control (Cc), a combining or
enclosing mark (Mn, Me), a format character (Cf) other than U+00AD SOFT
HYPHEN, or a Hangul medial vowel / final consonant (U+1160..U+11FF); 2 when
its East_Asian_Width is W or F (CJK, fullwidth forms, emoji with emoji
presentation); else 1.  tests/unit/test_textwidth.py checks featctl's
function against these rules for every code point."""
import unicodedata, sys
def width(cp):
    if 0xD800 <= cp <= 0xDFFF: return 1
    c = chr(cp)
    cat = unicodedata.category(c)
    if cat == 'Cc': return 0
    if cat in ('Mn','Me') or (cat == 'Cf' and cp != 0xAD) or 0x1160 <= cp <= 0x11FF: return 0
    if unicodedata.east_asian_width(c) in ('W','F'): return 2
    return 1
def ranges(w):
    out=[]; start=None
    for cp in range(0x110000):
        if width(cp)==w:
            if start is None: start=cp
        elif start is not None:
            out.append((start,cp-1)); start=None
    if start is not None: out.append((start,0x10FFFF))
    return out
z=ranges(0); wd=ranges(2)
print(len(z),len(wd), file=sys.stderr)
def emit(name, rs):
    print(f"static const feat_cp_range_t {name}[] = {{")
    line="   "
    for a,b in rs:
        item=f" {{0x{a:04X}, 0x{b:04X}}},"
        if len(line)+len(item)>112:
            print(line); line="   "
        line+=item
    print(line); print("};")
emit("zero_width", z); emit("double_width", wd)
