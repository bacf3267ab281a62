#!/usr/bin/env bash
# Builds Varscope and runs the whole test suite (C++ and Python) with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
