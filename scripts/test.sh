#!/usr/bin/env bash
# Builds everything (library, CLI, tests, benchmarks, Python module) and runs the whole suite.
# Usage: scripts/test.sh [extra cmake args...], e.g. -DSWIFTBALANCER_SANITIZE=address
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
JOBS="${JOBS:-$(nproc)}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSWIFTBALANCER_PYTHON=ON "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
# The soak (label soak) is long and runs on its own: scripts/soak.sh.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" -LE soak
