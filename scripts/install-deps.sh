#!/usr/bin/env bash
# Installs hibari's build and test dependencies from Debian 12 packages. Idempotent: packages already
# present are skipped, and apt is not touched at all when nothing is missing.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake pkg-config git ca-certificates
  # product libraries
  libopenblas-openmp-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev
  libpcre2-dev libzstd-dev zlib1g-dev libsentencepiece-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # reference peers for tests and benchmarks only (never in the product's path)
  python3 python3-torch python3-numpy
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
