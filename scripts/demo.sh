#!/usr/bin/env bash
# make demo: the whole path on the bundled Japanese + English sample (examples/demo):
#   1. train a 2000-piece SentencePiece BPE tokenizer on it (also written as HF tokenizer.json),
#   2. tokenize each language into a Megatron indexed dataset (.bin/.idx),
#   3. train a small Llama on the 60:40 blend, with validation loss per language, and sample,
#   4. export the final checkpoint as a Hugging Face model directory (transformers loads it),
#   5. continue a Japanese prompt with the exported model (hibari generate).
set -euo pipefail
hibari=${1:-build/hibari}
cd "$(dirname "$0")/.."
rm -rf runs/demo
mkdir -p runs/demo/data
"$hibari" tokenizer train --input examples/demo/ja.jsonl --input examples/demo/en.jsonl \
  --model-type bpe --vocab-size 2000 --output runs/demo/tokenizer
for lang in ja en; do
  "$hibari" data tokenize --input "examples/demo/$lang.jsonl" --tokenizer runs/demo/tokenizer \
    --output-prefix "runs/demo/data/$lang" --add-bos --workers 2
done
"$hibari" train --config examples/demo/run.toml
"$hibari" convert --from runs/demo/ckpt --to hf --output runs/demo/hf
cp runs/demo/tokenizer/* runs/demo/hf/
echo
echo "the trained model continues a prompt (KV-cached; temperature 0.7, top-k 20, seed 1):"
"$hibari" generate --model runs/demo/hf --prompt "Debian では" --max-new-tokens 48 --temperature 0.7 --top-k 20 --seed 1
echo
echo "metrics: runs/demo/metrics.jsonl; TensorBoard: tensorboard --logdir runs/demo"
echo "checkpoint: runs/demo/ckpt; Hugging Face model + tokenizer: runs/demo/hf"
