#!/usr/bin/env bash
# bench/eval_run.sh — hibari vs. PyTorch: log-likelihood scoring tokens/s of `hibari eval`'s scorer
# (eval/scorer.h on the KV-cached decoder) and of the lm-evaluation-harness-style PyTorch loop
# (tests/reference/eval_torch.py bench: padded batches, full log_softmax) on the same random fp32
# Llama (the generate bench's presets), the same multiple-choice-shaped requests and threads, with
# the ratio (hibari / torch).
#
#   bash bench/eval_run.sh [build_dir]      # default build_dir: build
# Environment: THREADS (default 2), PRESET (A or B, default A), DOCS (default 16), CONTEXT (tokens
# of the longest context, default 384), BATCH (sequences per forward on both sides, default 8),
# PYTHON (default /usr/bin/python3).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/common.sh"
build=${1:-build}
threads=${THREADS:-2}
preset=${PRESET:-A}
docs=${DOCS:-16}
context=${CONTEXT:-384}
batch=${BATCH:-8}
python=${PYTHON:-/usr/bin/python3}
bin=$build/bench/eval_bench
[[ -x $bin ]] || die "no $bin (cmake --build $build --target eval_bench)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=$threads
echo "hibari vs torch: eval scoring (preset $preset, fp32, $docs documents x 4 choices," \
  "contexts up to $context tokens, batch $batch, $threads thread(s))"
print_machine
h=$("$bin" "$work" "$preset" "$docs" "$context" "$batch")
t=$("$python" "$here/../tests/reference/eval_torch.py" bench --model "$work/model" \
  --requests "$work/requests.json" --threads "$threads" --batch "$batch")
echo "$h"
echo "$t"
"$python" - "$h" "$t" <<'PY'
import json, sys
h = json.loads(sys.argv[1])["score_tokens_per_s"]
t = float(sys.argv[2].split()[-1])
print(f"  score_tokens_per_s  hibari {h:9.1f}  torch {t:9.1f}  ratio {h / t:.2f}")
PY
