#!/bin/sh
# tests/fuzz/run_fuzz.sh FUZZER CORPUS SECONDS ARTIFACT_DIR — one ctest run of
# a libFuzzer target: its seed corpus (regress-* inputs included) is copied to
# a scratch directory, so new inputs never land in the repository; the target
# runs from it for SECONDS (FEATD_FUZZ_SECONDS in the environment overrides);
# any crash, leak, UB report, time-out (> 5 s per input) or RSS over 2 GiB
# fails the test and leaves the input in ARTIFACT_DIR.  The whole run is
# bounded (SECONDS + 300 s, start-up included), so ctest needs no time-out.
set -u
fuzzer=$1 corpus=$2 seconds=${FEATD_FUZZ_SECONDS:-$3} artifacts=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/featd-fuzz-run.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
mkdir -p "$work/corpus" "$work/tmp" "$artifacts"
cp "$corpus"/* "$work/corpus/" || exit 1
TMPDIR="$work/tmp" UBSAN_OPTIONS=print_stacktrace=1 \
  timeout -k 10 $((seconds + 300)) "$fuzzer" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work/corpus"
rc=$?
if [ $rc -ne 0 ]; then
  echo "run_fuzz: $(basename "$fuzzer") failed (exit $rc); inputs it left in $artifacts:" >&2
  for f in "$artifacts"/*; do
    [ -f "$f" ] || continue
    echo "  $f (base64: $(head -c 4096 "$f" | base64 -w0))" >&2
  done
  exit 1
fi
exit 0
