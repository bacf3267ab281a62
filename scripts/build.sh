#!/usr/bin/env bash
# Configures and builds Varscope into build/ (incremental after the first run).
# Arguments are passed to the configure step, e.g. -DVARSCOPE_BUILD_BENCH=ON
# (they stay in build/CMakeCache.txt for later runs).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build build
