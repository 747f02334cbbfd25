#!/usr/bin/env bash
# fuzz/run_fuzz.sh BINARY TARGET CORPUS_ROOT SECONDS REGRESSIONS_ROOT [libFuzzer flags...]
# FUZZ_SECONDS in the environment overrides SECONDS (`make fuzz`).
# Replays every input in REGRESSIONS_ROOT/TARGET (inputs that once crashed: each must now parse or
# be refused with a hibari::Error), then fuzzes for SECONDS from CORPUS_ROOT/TARGET (which grows).
# A crash leaves its input in CORPUS_ROOT/../fuzz-artifacts/TARGET-*; fix it and add the input to
# fuzz/regressions/TARGET/.
set -euo pipefail
bin=$1 target=$2 corpus=$3/$2 seconds=${FUZZ_SECONDS:-$4} regressions=$5/$2
shift 5
artifacts="$(dirname "$corpus")/../fuzz-artifacts"
mkdir -p "$corpus" "$artifacts"
# Leaks are findings too; the libraries' one-time allocations are freed at exit.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
if compgen -G "$regressions/*" >/dev/null; then
  "$bin" -runs=1 "$regressions"/*
fi
exec "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
  -artifact_prefix="$artifacts/$target-" "$@" "$corpus"
