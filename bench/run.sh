#!/usr/bin/env bash
# bench/run.sh — hibari vs. PyTorch, one training step, side by side (see bench/README.md).
#
#   bash bench/run.sh [build_dir]          # default build_dir: build
#
# Builds nothing: expects build_dir/bench/train_step_bench (or build_dir/train_step_bench), built by
# `make build` or `cmake --build build --target train_step_bench`.
# Environment (read, never changed):
#   THREADS   threads for both sides (default 2)
#   STEPS_A   timed steps for config A (default 5);  STEPS_B  for config B (default 10)
#   WARMUP    untimed steps before them (default 2)
#   CONFIGS   which configurations to run (default "A B")
#   PYTHON    the interpreter that has torch (default /usr/bin/python3, Debian's torch 1.13)
#   RESULTS   a file to append the raw JSON lines to (default: none)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-build}
threads=${THREADS:-2}
steps_a=${STEPS_A:-5}
steps_b=${STEPS_B:-10}
warmup=${WARMUP:-2}
configs=${CONFIGS:-A B}
python=${PYTHON:-/usr/bin/python3}

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bin=$build/bench/train_step_bench
[[ -x $bin ]] || die "no $bin (build it first: cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build --target train_step_bench)"
[[ -x $python ]] || die "$python not found (set PYTHON to an interpreter with torch)"
torch_version=$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null) ||
  die "$python cannot import torch (Debian: apt-get install python3-torch; or set PYTHON)"
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer, got '$threads'"
for config in $configs; do
  [[ $config == A || $config == B ]] || die "unknown configuration '$config' in CONFIGS (A or B)"
done

echo "hibari vs torch: one training step (fp32 Llama, AdamW, clip 1.0), $threads thread(s)"
echo "  binary               $bin"
echo "  torch                $torch_version ($python)"
print_machine
echo

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
results=()
run_one() {  # impl config steps -> appends one JSON line to results
  local impl=$1 config=$2 steps=$3 line
  local args=(--config "$config" --steps "$steps" --warmup "$warmup" --threads "$threads")
  echo "  running $impl $config ($warmup warm-up + $steps timed steps) ..." >&2
  if [[ $impl == hibari ]]; then
    line=$("$bin" "${args[@]}" | tail -n 1) || die "$bin failed on config $config"
  else
    line=$("$python" "$here/torch_peer.py" "${args[@]}" | tail -n 1) ||
      die "torch_peer.py failed on config $config"
  fi
  [[ $line == \{* ]] || die "$impl printed no JSON result for config $config: $line"
  results+=("$line")
  [[ -z ${RESULTS:-} ]] || echo "$line" >>"$RESULTS"
}

for config in $configs; do
  case $config in
    A) steps=$steps_a ;;
    B) steps=$steps_b ;;
    *) die "unknown configuration '$config' (A or B)" ;;
  esac
  run_one hibari "$config" "$steps"
  run_one torch "$config" "$steps"
done
echo >&2

printf '%s\n' "${results[@]}" >"$tmp"
"$python" - "$tmp" <<'PY'
import json, sys

with open(sys.argv[1]) as f:
    rows = [json.loads(line) for line in f if line.strip()]
by = {}
for r in rows:
    by.setdefault(r['config'], {})[r['impl']] = r

print("| config | hibari tok/s | torch tok/s | ratio | hibari RSS | torch RSS "
      "| hibari MFU | torch MFU | sgemm GFLOP/s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
notes = []
for name, pair in by.items():
    h, t = pair['hibari'], pair['torch']
    sgemm = h['sgemm_gflops'] * 1e9
    # Both MFUs divide by the sgemm rate hibari measured; torch measured its own too (same
    # OpenBLAS), shown in the details below.
    torch_mfu = t['tokens_per_s'] * t['flops_per_token'] / sgemm
    print(f"| {name} | {h['tokens_per_s']:.0f} | {t['tokens_per_s']:.0f} "
          f"| {h['tokens_per_s'] / t['tokens_per_s']:.2f}x "
          f"| {h['peak_rss_mb']:.0f} MiB | {t['peak_rss_mb']:.0f} MiB "
          f"| {100 * h['mfu']:.1f}% | {100 * torch_mfu:.1f}% | {h['sgemm_gflops']:.1f} |")
    if abs(h['flops_per_token'] - t['flops_per_token']) > 1e-6 * h['flops_per_token']:
        notes.append(f"warning: {name}: FLOPs/token differ (hibari {h['flops_per_token']:.4g},"
                     f" torch {t['flops_per_token']:.4g})")
    if h['parameters'] != t['parameters']:
        notes.append(f"warning: {name}: parameter counts differ (hibari {h['parameters']},"
                     f" torch {t['parameters']})")
print()
for name, pair in by.items():
    h, t = pair['hibari'], pair['torch']
    print(f"{name}: {h['parameters'] / 1e6:.1f}M params, B={h['batch']} T={h['seq']}, "
          f"{h['flops_per_token'] / 1e6:.1f} MFLOP/token, {h['steps']} timed steps")
    for r in (h, t):
        extra = ""
        if "baseline_rss_mb" in r:
            extra = f", RSS after import torch {r['baseline_rss_mb']:.0f} MiB"
        print(f"  {r['impl']:6s} step median {r['step_s_median']:.3f} s "
              f"(min {r['step_s_min']:.3f}, max {r['step_s_max']:.3f}), "
              f"loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}, "
              f"own sgemm {r['sgemm_gflops']:.1f} GFLOP/s, threads {r['threads']}{extra}")
for n in notes:
    print(n)
PY
