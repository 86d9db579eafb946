#!/usr/bin/env bash
# Installs every Debian 12 package that fieldsync's build, tests and benchmarks
# need. Idempotent and quick when everything is present: apt is not touched
# unless a package is missing. Run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev libgrpc-dev
  librocksdb-dev libabsl-dev libssl-dev libsodium-dev libsqlite3-dev
  libspdlog-dev libfmt-dev librdkafka-dev libcpp-httplib-dev kcat
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus openssl python3 python3-grpcio python3-cryptography
  clang clang-14 libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
