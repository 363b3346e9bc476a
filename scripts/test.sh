#!/usr/bin/env bash
# test.sh - sets up, builds and runs the whole test suite twice, then the fuzzers:
#   1. under AddressSanitizer + UndefinedBehaviorSanitizer (CPU-only build, build-asan/);
#      any report aborts the test and fails the run;
#   2. the optimized build (build/), with the CUDA backend when nvcc is found: its GPU tests
#      skip themselves on a machine without a GPU;
#   3. scripts/fuzz.sh: each file reader's libFuzzer target (clang, build-fuzz/) for a fixed
#      number of inputs from a fixed seed, at most a minute each; a crash fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

jobs=$(nproc)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMILA_SANITIZE=ON -DMILA_CUDA=OFF \
      -DMILA_BUILD_BENCH=OFF -DMILA_BUILD_EXAMPLES=OFF > /dev/null
cmake --build build-asan -j "$jobs"
echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer =="
ctest --test-dir build-asan --output-on-failure -j "$jobs"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$jobs"
echo "== tests, optimized build =="
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== fuzz targets (scripts/fuzz.sh) =="
scripts/fuzz.sh
