#!/usr/bin/env python3
"""Self-test of tools/layers.py, the include-layering check CI runs.

Builds small source trees in a temporary directory and runs the checker on
them with --root: a tree whose includes point down passes (exit 0, silent);
a lower module including a higher one, a module missing from ALLOWED and a
train/core file reaching up into train each fail (exit 1) naming the file.
Then checks that docs/ARCHITECTURE.md holds `layers.py --table` verbatim, so
the document's edge list and the enforced rule cannot drift apart.
"""
import argparse
import os
import subprocess
import sys
import tempfile


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def run(layers, *args):
    p = subprocess.run([sys.executable, layers] + list(args), capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def good_tree(root):
    write(root, 'common/err.h', '#pragma once\n')
    write(root, 'common/log.c', '#include "common/err.h"\n#include <stdio.h>\n')
    write(root, 'store/store.h', '#include "common/err.h"\n')
    write(root, 'store/store.c', '#include "store/store.h"\n#include "common/err.h"\n')
    write(root, 'ingest/ingest.c', '#include "store/store.h"\n#include "featd/v1/event.pb-c.h"\n')
    write(root, 'train/core/model.h', '#include "common/err.h"\n')
    write(root, 'train/models.c', '#include "train/core/model.h"\n#include "store/store.h"\n')
    # not looked at: tests/ and build*/ may include anything
    write(root, 'tests/unit/test_x.c', '#include "daemon/daemon.h"\n')
    write(root, 'build/gen/x.c', '#include "daemon/daemon.h"\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build-dir')
    ap.add_argument('--source-dir', required=True)
    a = ap.parse_args()
    layers = os.path.join(a.source_dir, 'tools', 'layers.py')
    failures = []

    def expect(name, cond, out):
        if not cond:
            failures.append('%s\n%s' % (name, out))
        print('%-48s %s' % (name, 'ok' if cond else 'FAILED'))

    with tempfile.TemporaryDirectory(prefix='featd-layers-') as root:
        good_tree(root)
        rc, out = run(layers, '--root', root)
        expect('includes that point down pass silently', rc == 0 and out == '', out)

        write(root, 'common/bad.c', '#include "store/store.h"\n')
        rc, out = run(layers, '--root', root)
        expect('common including store fails', rc == 1 and 'common/bad.c' in out and
               'common may not include store' in out, out)
        os.remove(os.path.join(root, 'common/bad.c'))

        write(root, 'store/up.h', '  #  include "ingest/ingest.h"\n')
        rc, out = run(layers, '--root', root)
        expect('store including ingest fails (spaced #)', rc == 1 and 'store/up.h' in out, out)
        os.remove(os.path.join(root, 'store/up.h'))

        write(root, 'store/pb.c', '#include "featd/v1/event.pb-c.h"\n')
        rc, out = run(layers, '--root', root)
        expect('store including generated proto fails', rc == 1 and 'store may not include proto' in out, out)
        os.remove(os.path.join(root, 'store/pb.c'))

        write(root, 'train/core/up.c', '#include "train/models.h"\n')
        rc, out = run(layers, '--root', root)
        expect('train/core including train fails', rc == 1 and 'train/core may not include train' in out, out)
        os.remove(os.path.join(root, 'train/core/up.c'))

        write(root, 'newmod/x.c', '#include "common/err.h"\n')
        rc, out = run(layers, '--root', root)
        expect('a module missing from ALLOWED fails', rc == 1 and 'newmod' in out, out)
        os.remove(os.path.join(root, 'newmod/x.c'))

        rc, out = run(layers, '--root', root)
        expect('the tree passes again', rc == 0 and out == '', out)

    rc, out = run(layers, '--root', os.path.join(a.source_dir, 'no-such-dir'))
    expect('--root that does not exist is an error', rc == 2, out)

    rc, table = run(layers, '--table')
    doc_path = os.path.join(a.source_dir, 'docs', 'ARCHITECTURE.md')
    doc = open(doc_path).read() if os.path.exists(doc_path) else ''
    expect('docs/ARCHITECTURE.md holds layers.py --table', rc == 0 and table and table in doc,
           'regenerate the table in docs/ARCHITECTURE.md with `python3 tools/layers.py --table`')

    if failures:
        print('\n'.join(failures))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
