#!/usr/bin/env bash
# make demo: train the small byte-level model on the bundled Japanese + English text.
set -euo pipefail
hibari=${1:-build/hibari}
cd "$(dirname "$0")/.."
rm -rf runs/demo
"$hibari" train --config examples/demo/run.toml
echo
echo "metrics: runs/demo/metrics.jsonl; TensorBoard: tensorboard --logdir runs/demo"
