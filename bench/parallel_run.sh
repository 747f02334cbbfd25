#!/usr/bin/env bash
# bench/parallel_run.sh BUILD_DIR — multi-process training on this machine, side by side in one
# invocation: the demo model (examples/demo/config.json) on the demo corpus, one process with all
# cores against `mpirun -np 2` layouts with the cores split between the ranks. For each layout:
# tokens/s, the ratio to one process, and the bytes rank 0 sent per training step (hibari counts
# every collective at its ring-algorithm volume) beside the textbook volume for data-parallel
# methods. Then the loss of ZeRO-3 with int8-quantized gathers against exact ZeRO-3 over
# QUANT_STEPS steps (0 skips it).
#
#   STEPS=20 QUANT_STEPS=200 bash bench/parallel_run.sh build
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
build=${1:-build}
hibari=$build/hibari
[[ -x $hibari ]] || die "no $hibari (build first)"
steps=${STEPS:-20}
quant_steps=${QUANT_STEPS:-200}
cores=$(nproc)
mpirun=(mpirun --oversubscribe --allow-run-as-root --mca btl self,vader --bind-to none)
out=$build/bench_parallel
rm -rf "$out"
mkdir -p "$out/data"

echo "hibari parallel bench: demo model, $steps steps per layout, global batch 16 x 128 tokens"
print_machine
"$hibari" tokenizer train --input examples/demo/ja.jsonl --input examples/demo/en.jsonl \
  --model-type bpe --vocab-size 2000 --output "$out/tokenizer" >/dev/null
for lang in ja en; do
  "$hibari" data tokenize --input "examples/demo/$lang.jsonl" --tokenizer "$out/tokenizer" \
    --output-prefix "$out/data/$lang" --add-bos --workers 2 >/dev/null
done

# write_run NAME STEPS THREADS [parallel lines...]
write_run() {
  local name=$1 n=$2 threads=$3
  shift 3
  {
    cat <<EOF
[model]
config = "$PWD/examples/demo/config.json"
[data]
prefixes = ["$PWD/$out/data/ja", "$PWD/$out/data/en"]
weights = [0.6, 0.4]
split = "95,5,0"
[train]
seq_length = 128
micro_batch_size = 4
global_batch_size = 16
steps = $n
log_every = 1000
eval_batches = 0
threads = $threads
[optimizer]
lr = 3e-3
min_lr = 3e-4
[schedule]
warmup_steps = 10
[checkpoint]
every = 0
dir = "$PWD/$out/runs/$name/ckpt"
[run]
dir = "$PWD/$out/runs/$name"
[parallel]
EOF
    local line
    for line in "$@"; do echo "$line"; done
  } >"$out/$name.toml"
}

# The demo model's parameters, in bytes (4 per float), from the train header.
run_layout() { # NAME NP PARALLEL_LINES...
  local name=$1 np=$2
  shift 2
  local threads=$((cores / np > 0 ? cores / np : 1))
  write_run "$name" "$steps" "$threads" "$@"
  if [[ $np == 1 ]]; then
    "$hibari" train --config "$out/$name.toml" >"$out/$name.log" 2>&1
  else
    "${mpirun[@]}" -np "$np" "$hibari" train --config "$out/$name.toml" >"$out/$name.log" 2>&1
  fi
}

tokens_per_s() { sed -n 's/^done: .* \([0-9]*\) tokens\/s.*/\1/p' "$out/$1.log"; }
sent_mb() { sed -n 's/^sent per step by rank 0: \([0-9.]*\) MB.*/\1/p' "$out/$1.log"; }

run_layout one 1
params=$(sed -n 's/.* \([0-9.]*\)M params$/\1/p' "$out/one.log")
# P in MB (4 bytes per parameter), and the data-parallel textbook volumes on 2 ranks, 2
# micro-batches per rank: all-reduce 2(p-1)/p P = P; ZeRO-1 reduce-scatter + all-gather = P;
# ZeRO-2 reduce-scatter per micro-batch + all-gather = (2 + 1)/2 P; ZeRO-3 reduce-scatter and two
# all-gathers (forward, backward) per micro-batch = (2 + 4)/2 P; int8 all-gathers 1/3.94 of theirs.
P=$(awk -v p="$params" 'BEGIN { printf "%.3f", p * 4 }')
theory() {
  awk -v P="$P" -v k="$1" 'BEGIN { printf "%.3f", P * k }'
}
one=$(tokens_per_s one)
printf '\n| layout (2 processes) | tokens/s | vs 1 process | MB sent per step (rank 0) | textbook MB |\n'
printf '|---|---|---|---|---|\n'
printf '| 1 process, %d threads | %s | 1.00 | 0 | 0 |\n' "$cores" "$one"
row() { # NAME LABEL THEORY PARALLEL...
  local name=$1 label=$2 th=$3
  shift 3
  run_layout "$name" 2 "$@"
  local tps
  tps=$(tokens_per_s "$name")
  printf '| %s | %s | %s | %s | %s |\n' "$label" "$tps" \
    "$(awk -v a="$tps" -v b="$one" 'BEGIN { printf "%.2f", a / b }')" "$(sent_mb "$name")" "$th"
}
row dp2 "dp 2" "$(theory 1)"
row z1 "dp 2, ZeRO-1" "$(theory 1)" "zero_stage = 1"
row z2 "dp 2, ZeRO-2" "$(theory 1.5)" "zero_stage = 2"
row z3 "dp 2, ZeRO-3" "$(theory 3)" "zero_stage = 3"
row z3q "dp 2, ZeRO-3, int8 gathers" "$(theory "$(awk 'BEGIN { print 1 + 2 / 3.9375 }')")" \
  "zero_stage = 3" "quantized_gather = true"
row tp2 "tp 2" "-" "tp = 2"
row tp2sp "tp 2, sequence parallel" "-" "tp = 2" "sequence_parallel = true"
row pp2 "pp 2 (1F1B, 4 micro-batches)" "-" "pp = 2"
echo "(P = $P MB of fp32 parameters; $out/*.log hold the full output)"

if [[ $quant_steps -gt 0 ]]; then
  echo
  echo "ZeRO-3 with int8 gathers against exact ZeRO-3, $quant_steps steps, dp 2:"
  threads=$((cores / 2 > 0 ? cores / 2 : 1))
  write_run q_exact "$quant_steps" "$threads" "zero_stage = 3"
  write_run q_int8 "$quant_steps" "$threads" "zero_stage = 3" "quantized_gather = true"
  for name in q_exact q_int8; do
    "${mpirun[@]}" -np 2 "$hibari" train --config "$out/$name.toml" >"$out/$name.log" 2>&1
  done
  /usr/bin/python3 - "$out/runs/q_exact/metrics.jsonl" "$out/runs/q_int8/metrics.jsonl" <<'EOF'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
rel = [abs(x - y) / x for x, y in zip(a, b)]
last = sum(a[-20:]) / 20, sum(b[-20:]) / 20
print(f"  max |int8 - exact| / exact over {len(a)} steps: {max(rel):.2e}"
      f" (step {rel.index(max(rel)) + 1}); mean of the last 20 losses: exact {last[0]:.4f},"
      f" int8 {last[1]:.4f} ({(last[1] - last[0]) / last[0]:+.2%})")
EOF
fi
