#!/usr/bin/env bash
# bench/generate_run.sh — hibari vs. PyTorch: KV-cached greedy decoding, prefill and scoring of the
# same random fp32 Llama, same threads, side by side, with the ratios (hibari / torch).
#
#   bash bench/generate_run.sh [build_dir]      # default build_dir: build
# Environment: THREADS (default 2), PRESET (A or B, default A), CASES ("BATCH:PROMPT:NEW ...",
# default "1:64:64 8:64:64"), PYTHON (default /usr/bin/python3).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-build}
threads=${THREADS:-2}
preset=${PRESET:-A}
cases=${CASES:-1:64:64 8:64:64}
python=${PYTHON:-/usr/bin/python3}
bin=$build/bench/generate_bench
[[ -x $bin ]] || { echo "no $bin (cmake --build $build --target generate_bench)" >&2; exit 1; }
export OMP_NUM_THREADS=$threads
echo "hibari vs torch: generation (preset $preset, fp32, $threads thread(s))"
for c in $cases; do
  IFS=: read -r batch prompt new <<<"$c"
  h=$("$bin" "$preset" "$batch" "$prompt" "$new")
  hb=$("$bin" "$preset" "$batch" "$prompt" "$new" blas)
  t=$("$python" "$here/generate_torch.py" "$preset" "$batch" "$prompt" "$new" --threads "$threads")
  echo "$h"; echo "$hb"; echo "$t"
  "$python" - "$h" "$hb" "$t" <<'PY'
import json, sys
h, hb, t = (json.loads(x) for x in sys.argv[1:])
for key in ("decode_tokens_per_s", "prefill_tokens_per_s", "score_tokens_per_s"):
    print(f"  {key:22s} hibari {h[key]:9.1f}  hibari-blas {hb[key]:9.1f}  torch {t[key]:9.1f}"
          f"  ratio {h[key] / t[key]:.2f} / {hb[key] / t[key]:.2f}")
print(f"  scoring MFU: hibari {100 * h['score_mfu']:.1f}%, hibari-blas {100 * hb['score_mfu']:.1f}%"
      f" of {h['gemm_gflops']:.0f} GFLOP/s (the faster of OpenBLAS sgemm and the rowwise GEMM)")
PY
done
