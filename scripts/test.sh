#!/usr/bin/env bash
# Builds Varscope and runs the whole test suite (C++ and Python) with CTest.
# As CI: warnings are errors, the benchmarks are built too (so they keep
# compiling), and the Python tests run with Debian's python3 (the one with
# numpy and pytest, whatever python3 comes first on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh -DVARSCOPE_WERROR=ON -DVARSCOPE_BUILD_BENCH=ON \
  -DPython3_EXECUTABLE=/usr/bin/python3
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
