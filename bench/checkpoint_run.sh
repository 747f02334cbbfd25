#!/usr/bin/env bash
# bench/checkpoint_run.sh — checkpoint write MB/s beside the disk's sequential write rate, and the
# stall a checkpoint causes in the training step (see bench/README.md, "Checkpoints").
#
#   bash bench/checkpoint_run.sh [build_dir]     # default build_dir: build-bench
#
# Uses build_dir/bench/checkpoint_bench (or build_dir/checkpoint_bench) when it exists; otherwise
# builds that one target (`cmake --build build_dir --target checkpoint_bench`), if build_dir is a
# configured CMake build directory.
# Environment (read, never changed):
#   THREADS   training threads (default 2, as bench/run.sh)
#   DIR       where the checkpoints are written (default: build_dir, the repository's disk); the
#             benchmark works in DIR/checkpoint_bench.<pid>/ and removes it afterwards
#   REPEATS   runs of each write measurement and background/foreground checkpoints (default 3)
#   STEPS     timed steps without checkpoints (default 6)
#   PAUSE_MS  pause before each disk / write_checkpoint run (default 0; see checkpoint_bench.cpp)
#   ARGS      further flags for checkpoint_bench (model size: --hidden --layers ... --batch)
set -euo pipefail

build=${1:-build-bench}
threads=${THREADS:-2}
dir=${DIR:-$build}
repeats=${REPEATS:-3}
steps=${STEPS:-6}
pause_ms=${PAUSE_MS:-0}

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bin=$build/bench/checkpoint_bench
[[ -x $bin ]] || bin=$build/checkpoint_bench
if [[ ! -x $bin ]]; then
  [[ -f $build/CMakeCache.txt ]] ||
    die "no $build/bench/checkpoint_bench and $build is not a CMake build directory (cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release -DHIBARI_BENCH=ON)"
  cmake --build "$build" -j2 --target checkpoint_bench >&2
  bin=$build/bench/checkpoint_bench
  [[ -x $bin ]] || bin=$build/checkpoint_bench
  [[ -x $bin ]] || die "building checkpoint_bench in $build gave no binary"
fi
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer, got '$threads'"
mkdir -p "$dir"

read -r fs_dev fs_type fs_mount < <(df --output=source,fstype,target "$dir" | tail -n 1)
echo "hibari checkpoint write and training stall, $threads thread(s)"
echo "  binary               $bin"
echo "  dir                  $(cd "$dir" && pwd) ($fs_dev, $fs_type, mounted on $fs_mount)"
print_machine
echo

# shellcheck disable=SC2086  # ARGS is a list of flags
"$bin" --dir "$dir" --threads "$threads" --repeats "$repeats" --steps "$steps" \
  --pause-ms "$pause_ms" ${ARGS:-}
