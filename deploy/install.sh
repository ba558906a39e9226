#!/usr/bin/env bash
# Installs every Debian 12 package featd's build, tests and demo need.
# Idempotent: does nothing when everything is already installed.  Runs apt-get
# through sudo when not root.  CUDA is optional and not installed here: the
# build uses nvcc from /usr/local/cuda when present, and a CPU trainer always.
# --build-only installs just what `cmake --build` needs (deploy/Dockerfile).
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config
  librdkafka-dev librocksdb-dev libevent-dev libgrpc-dev libssl-dev
  protobuf-c-compiler libprotobuf-c-dev libinih-dev check libsubunit-dev libxgboost-dev
)
TEST_PACKAGES=(
  # tests: outside clients, reference implementations, tools
  python3 python3-confluent-kafka python3-grpcio python3-grpc-tools python3-protobuf
  python3-numpy python3-scipy python3-sklearn python3-xgboost python3-pandas python3-redis
  redis-server redis-tools
  kcat prometheus valgrind clang libclang-rt-14-dev chromium openssl
)
if [ "${1:-}" != "--build-only" ]; then PACKAGES+=("${TEST_PACKAGES[@]}"); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deploy/install.sh: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deploy/install.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
