#!/usr/bin/env bash
# Installs the Debian 12 packages Varscope builds, tests and runs with.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libabsl-dev librocksdb-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
  libgtest-dev libgmock-dev
  pybind11-dev python3-dev python3-numpy python3-pytest python3-setuptools
  python3-pip
  libhiredis-dev redis-server iperf3
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
