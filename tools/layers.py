#!/usr/bin/env python3
"""featd's module layering, from the include lines.

  tools/layers.py            check: exit 1 naming each include of a module that is not
                             among the including module's allowed dependencies
  tools/layers.py --report   lines per folder, the largest file and function, and the
                             module dependency edges (for closing notes)

A module is a source folder (train/core, serve/grpc... count apart from their parent).
ALLOWED is the dependency rule; docs/ARCHITECTURE.md gives the reason for each edge.
"""
import os, re, sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC_EXT = ('.c', '.h', '.cu')
SKIP = ('tests', 'build', 'deploy', 'docs', '.git', '.ci')

# module -> modules whose headers it may include (direct edges only).
ALLOWED = {
    'common': set(),
    'proto': {'common'},
    'stats': {'common'},
    'train/core': {'common'},
    'store': {'common'},
    'ingest': {'common', 'proto', 'store'},
    'drift': {'common', 'stats', 'store'},
    'train': {'common', 'stats', 'store', 'train/core'},
    'rpc': {'common', 'proto'},
    'serve': {'common', 'proto', 'rpc', 'store', 'ingest', 'drift', 'train', 'train/core'},
    'admin': {'common', 'proto', 'serve', 'rpc', 'store', 'ingest', 'drift', 'train'},
    'daemon': {'common', 'proto', 'rpc', 'serve', 'admin', 'store', 'ingest', 'drift', 'train',
               'train/core', 'stats'},
    'featctl': {'common', 'proto', 'rpc'},
    'tools': {'common', 'store', 'train', 'train/core', 'stats'},
}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def module_of(path):
    """'train/core/kern.h' -> 'train/core'; 'drift/tools/x.c' -> 'drift'."""
    parts = path.split('/')
    if len(parts) < 2:
        return None
    if parts[0] in ('train', 'serve') and len(parts) > 2 and parts[1] not in ('tools', 'tests', 'bench'):
        cand = parts[0] + '/' + parts[1]
        if cand in ALLOWED:
            return cand
    return parts[0]


def sources():
    for top in sorted(os.listdir(ROOT)):
        if top in SKIP or top.startswith('build') or not os.path.isdir(os.path.join(ROOT, top)):
            continue
        for d, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(x for x in dirs if x not in ('tests', 'bench'))
            for f in sorted(files):
                if f.endswith(SRC_EXT):
                    yield os.path.relpath(os.path.join(d, f), ROOT)


def edges():
    out = defaultdict(list)  # (from, to) -> [file: header]
    for rel in sources():
        m = module_of(rel)
        with open(os.path.join(ROOT, rel), errors='replace') as fh:
            for line in fh:
                g = INC.match(line)
                if not g or '/' not in g.group(1):
                    continue
                hm = 'proto' if g.group(1).startswith('featd/v1/') else module_of(g.group(1))
                if hm and hm != m:
                    out[(m, hm)].append('%s: %s' % (rel, g.group(1)))
    return out


def largest_function(path):
    best, name, start, cur = (0, None), None, 0, None
    with open(path, errors='replace') as fh:
        lines = fh.readlines()
    for i, l in enumerate(lines):
        if cur is None and re.match(r'^[A-Za-z_].*\(.*\)\s*\{\s*$', l) and not l.startswith(('struct', 'typedef', 'enum')):
            cur = re.search(r'([A-Za-z_]\w*)\s*\(', l).group(1); start = i
        elif cur is None and l.startswith('{') and i and re.match(r'^[A-Za-z_].*\)\s*$', lines[i - 1]):
            m = re.search(r'([A-Za-z_]\w*)\s*\(', lines[i - 1])
            cur = m.group(1) if m else '?'; start = i
        elif cur is not None and l.startswith('}'):
            if i - start + 1 > best[0]:
                best = (i - start + 1, cur)
            cur = None
    return best


def report():
    per = defaultdict(int)
    files = []
    for rel in list(sources()) + [os.path.relpath(os.path.join(d, f), ROOT)
                                  for d, _, fs in os.walk(os.path.join(ROOT, 'tests'))
                                  for f in fs if f.endswith(SRC_EXT + ('.py',))]:
        n = sum(1 for _ in open(os.path.join(ROOT, rel), errors='replace'))
        per[rel.split('/')[0]] += n
        files.append((n, rel))
    print('lines per top-level folder (C, CUDA; tests/ with Python):')
    for k in sorted(per):
        print('  %-10s %6d' % (k, per[k]))
    src = [x for x in files if not x[1].startswith('tests/')]
    src.sort(reverse=True)
    print('largest source files:', ', '.join('%s %d' % (r, n) for n, r in src[:3]))
    fn = []
    for _, rel in src:
        if rel.endswith('.c'):
            n, name = largest_function(os.path.join(ROOT, rel))
            fn.append((n, '%s:%s' % (rel, name)))
    fn.sort(reverse=True)
    print('largest functions:', ', '.join('%s %d lines' % (w, n) for n, w in fn[:5]))
    e = edges()
    print('module dependency edges (%d):' % len(e))
    for (a, b) in sorted(e):
        bad = '' if b in ALLOWED.get(a, set()) else '   <- not allowed'
        print('  %-10s -> %-10s %3d include(s)%s' % (a, b, len(e[(a, b)]), bad))


def check():
    bad = 0
    for (a, b), where in sorted(edges().items()):
        if a not in ALLOWED:
            print('layers: module %s is not in tools/layers.py ALLOWED' % a); bad += 1
        elif b not in ALLOWED[a]:
            for w in where:
                print('layers: %s: %s may not include %s (allowed: %s)' % (w.split(':')[0], a, b,
                      ', '.join(sorted(ALLOWED[a])) or 'nothing'))
                bad += 1
    if bad:
        print('layers: %d include(s) break the dependency rule (docs/ARCHITECTURE.md)' % bad)
    return 1 if bad else 0


if __name__ == '__main__':
    if '--report' in sys.argv:
        report()
        sys.exit(0)
    sys.exit(check())
