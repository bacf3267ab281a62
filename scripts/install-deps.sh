#!/usr/bin/env bash
# Installs the Debian 12 packages Varscope builds, tests and runs with.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libabsl-dev librocksdb-dev libleveldb-dev libcli11-dev nlohmann-json3-dev
  zlib1g-dev
  libgtest-dev libgmock-dev
  pybind11-dev python3-dev python3-numpy python3-pytest python3-setuptools
  python3-pip
  libhiredis-dev redis-server iperf3 python3-redis
  libcpp-httplib-dev prometheus
  yamllint openssl libssl-dev
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}"

# The Kubernetes API schemas that tests/deploy validates the manifests with
# (npm registry; skipped when these versions are already installed).
npm_packages=(kubernetes-models@5.1.0 js-yaml@4.1.0)
if ! npm ls -g "${npm_packages[@]}" >/dev/null 2>&1; then
  $sudo npm install -g --no-fund --no-audit --loglevel=error "${npm_packages[@]}"
fi
