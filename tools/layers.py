#!/usr/bin/env python3
"""featd's module layering, from the include lines.

  tools/layers.py              check: exit 1 naming each include of a module that is
                               not among the including module's allowed dependencies
  tools/layers.py --report     lines per folder, the largest file and function, and the
                               module dependency edges (for closing notes)
  tools/layers.py --table      the allowed edges with their reasons as a Markdown table
                               (docs/ARCHITECTURE.md holds this table verbatim; the unit
                               test test_layers_selftest checks that it does)
  --root DIR                   check the tree under DIR instead of this repository

A module is a source folder; train/core counts apart from train.  Only
#include "module/file.h" lines count (a path with a slash); "featd/v1/..." is
proto's generated code.  tests/, build*/, deploy/, docs/ are not looked at.
ctest runs the check (test `layers`, label unit) and .ci/run runs it first.

ALLOWED is the dependency rule: module -> {module it may include: why}.  Edges
point down (docs/ARCHITECTURE.md, "Dependency rule"); an edge is added here,
with its reason, in the same change as the include that needs it.
"""
import argparse, os, re, sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC_EXT = ('.c', '.h', '.cu')
SKIP = ('tests', 'build', 'deploy', 'docs', '.git', '.ci')

ALLOWED = {
    'common': {},
    'proto': {
        'common': 'hand-written encoders beside the generated code write into common/buf.h',
    },
    'stats': {
        'common': 'feat_err_t only (header-only: stats links nothing but libm)',
    },
    'train/core': {
        'common': 'feat_err_t and feat_ftype_t only (header-only: train/core builds on its own)',
    },
    'store': {
        'common': 'table declarations from the config, buffers, errors, log',
        'stats': 'tiles fold KLL and HyperLogLog sketches',
    },
    'ingest': {
        'common': 'config, log, metrics, clocks',
        'proto': 'decodes featd.v1.FeatureEvent / LabelEvent',
        'store': 'commits each poll batch with its offsets, reads the stored offsets',
    },
    'drift': {
        'common': 'config, metrics, the alert bus it publishes to',
        'stats': 'KLL sketches, KS, PSI / KL / JS, category frequencies',
        'store': 'persists and reloads reference profiles',
    },
    'train': {
        'common': 'config, metrics, JSON, the alert bus (live-quality alerts)',
        'stats': 'sketches a training set into the references drift compares with',
        'store': 'point-in-time reads, labels, predictions, the registry\'s records',
        'train/core': 'preprocessing, trainers (CPU, CUDA), metrics, the model runtime',
    },
    'rpc': {
        'common': 'arena, buffers, metrics, log, feat_err_t',
        'proto': 'protobuf-c (proto\'s library) unpacks requests into the call\'s arena',
    },
    'serve': {
        'common': 'arena, buffers, clocks, UTF-8 checks, hashes',
        'proto': 'the featd.v1 request and response messages',
        'rpc': 'implements rpc.h\'s method table (never sees a gRPC type)',
        'store': 'online lookups, point-in-time history, the predictions family',
        'ingest': 'lag and readiness for Status, the producer behind prediction_topic',
        'drift': 'drift reports and pins, the prediction stream it feeds',
        'train': 'served versions (acquire/release), the registry, retrain requests',
        'train/core': 'runs the served model\'s predict',
    },
    'admin': {
        'common': 'buffers, metrics, log, clocks; the Redis protocol\'s parser and replies (resp, dtoa)',
        'proto': 'encodes featd.v1.DriftAlert for the Kafka alert sink; the HTTP/JSON API\'s JSON mapping (pbjson)',
        'rpc': 'the HTTP/JSON API calls the gRPC handlers through rpc.h\'s method table and status mapping; '
               'the call context the Redis protocol\'s reads carry (token, deadline, arena); tls.h\'s context '
               'for HTTPS',
        'serve': 'the status snapshot, bearer-token checks, cache statistics, the method table; the Redis '
                 'protocol\'s online reads (feat_serve_online, the lookup scratch)',
        'store': 'RocksDB size and memory on /metrics; tables by name and values for the Redis protocol',
        'ingest': '/readyz and partition lag',
        'drift': '/v1/drift and the drift page',
    },
    'daemon': {
        'common': 'loads the config, logging, metrics, the alert bus',
        'store': 'opens and closes the store',
        'ingest': 'the embedded broker, the consumer, the producer, the demo',
        'drift': 'the drift monitor',
        'train': 'the registry, retrain engine and live quality',
        'rpc': 'the gRPC server and its TLS files',
        'serve': 'the handlers, cache, prediction log, auth, status',
        'admin': 'admin HTTP, the webhook and the alert encoders (sinks)',
    },
    'featctl': {
        'common': 'config (--config finds the address), buffers, JSON, text width, time formats',
        'proto': 'the featd.v1 messages it sends and prints',
        'rpc': 'the blocking gRPC client and its TLS files',
    },
    'tools': {
        'common': 'config, buffers',
        'store': 'opens the store read-only and dumps it',
        'train': 'audits the model registry',
    },
}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def module_of(path):
    """'train/core/kern.h' -> 'train/core'; 'stats/tools/x.c' -> 'stats'."""
    parts = path.split('/')
    if len(parts) < 2:
        return None
    if len(parts) > 2 and parts[0] + '/' + parts[1] in ALLOWED:
        return parts[0] + '/' + parts[1]
    return parts[0]


def sources(root):
    for top in sorted(os.listdir(root)):
        if top in SKIP or top.startswith('build') or not os.path.isdir(os.path.join(root, top)):
            continue
        for d, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = sorted(x for x in dirs if x not in ('tests', 'bench'))
            for f in sorted(files):
                if f.endswith(SRC_EXT):
                    yield os.path.relpath(os.path.join(d, f), root)


def edges(root):
    out = defaultdict(list)  # (from, to) -> ['file: header', ...]
    for rel in sources(root):
        m = module_of(rel)
        with open(os.path.join(root, rel), errors='replace') as fh:
            for line in fh:
                g = INC.match(line)
                if not g or '/' not in g.group(1):
                    continue
                hm = 'proto' if g.group(1).startswith('featd/v1/') else module_of(g.group(1))
                if hm and hm != m:
                    out[(m, hm)].append('%s: %s' % (rel, g.group(1)))
    return out


def largest_function(path):
    """(lines, name) of the longest function definition in a C file: a
    top-level '{' whose declarator (since the last top-level ';' or '}')
    has a parameter list and is no struct, enum, union or initializer."""
    with open(path, errors='replace') as fh:
        text = fh.read()
    text = re.sub(r'/\*.*?\*/', lambda m: '\n' * m.group(0).count('\n'), text, flags=re.S)
    text = re.sub(r'//[^\n]*|"(\\.|[^"\\\n])*"|\'(\\.|[^\'\\\n])*\'', '""', text)
    text = re.sub(r'^\s*#[^\n]*(\\\n[^\n]*)*', '', text, flags=re.M)
    best, depth, decl, name, start, line = (0, None), 0, '', None, 0, 1
    for ch in text:
        if ch == '\n':
            line += 1
        if depth == 0:
            if ch == '{':
                head = decl.strip()
                m = re.search(r'([A-Za-z_]\w*)\s*\(', head)
                if m and '=' not in head and not re.match(r'(typedef|struct|enum|union)\b', head):
                    name, start = m.group(1), line
                else:
                    name = None
                depth, decl = 1, ''
            elif ch in ';}':
                decl = ''
            else:
                decl += ch
        elif ch == '{':
            depth += 1
        elif ch == '}':
            depth -= 1
            if depth == 0 and name and line - start + 1 > best[0]:
                best = (line - start + 1, name)
    return best


def report(root):
    per = defaultdict(int)
    files = []
    for rel in list(sources(root)) + [os.path.relpath(os.path.join(d, f), root)
                                      for d, _, fs in os.walk(os.path.join(root, 'tests'))
                                      for f in fs if f.endswith(SRC_EXT + ('.py',))]:
        n = sum(1 for _ in open(os.path.join(root, rel), errors='replace'))
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
            n, name = largest_function(os.path.join(root, rel))
            fn.append((n, '%s:%s' % (rel, name)))
    fn.sort(reverse=True)
    print('largest functions:', ', '.join('%s %d lines' % (w, n) for n, w in fn[:5]))
    e = edges(root)
    print('module dependency edges (%d):' % len(e))
    for (a, b) in sorted(e):
        bad = '' if b in ALLOWED.get(a, {}) else '   <- not allowed'
        print('  %-10s -> %-10s %3d include(s)%s' % (a, b, len(e[(a, b)]), bad))


def table():
    """ALLOWED as the Markdown table docs/ARCHITECTURE.md holds: one row per module."""
    out = ['| module | may include: why |', '|---|---|']
    for a, deps in ALLOWED.items():
        why = '; '.join('`%s`: %s' % (b, r) for b, r in deps.items()) or 'nothing (the bottom)'
        out.append('| `%s` | %s |' % (a, why))
    return '\n'.join(out) + '\n'


def check(root):
    bad = 0
    for (a, b), where in sorted(edges(root).items()):
        if a not in ALLOWED:
            print('layers: module %s is not in tools/layers.py ALLOWED (%s)' % (a, where[0].split(':')[0]))
            bad += 1
        elif b not in ALLOWED[a]:
            for w in where:
                print('layers: %s: %s may not include %s (allowed: %s)' % (w.split(':')[0], a, b,
                      ', '.join(sorted(ALLOWED[a])) or 'nothing'))
                bad += 1
    if bad:
        print('layers: %d include(s) break the dependency rule (docs/ARCHITECTURE.md)' % bad)
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description='featd include-layering check')
    ap.add_argument('--root', default=ROOT, help='tree to check (default: this repository)')
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--report', action='store_true', help='sizes and dependency edges')
    g.add_argument('--table', action='store_true', help='ALLOWED as the Markdown table of docs/ARCHITECTURE.md')
    a = ap.parse_args()
    if not os.path.isdir(a.root):
        print('layers: --root %s is not a directory' % a.root, file=sys.stderr)
        return 2
    if a.report:
        report(a.root)
        return 0
    if a.table:
        sys.stdout.write(table())
        return 0
    return check(a.root)


if __name__ == '__main__':
    sys.exit(main())
