#!/usr/bin/env bash
# test.sh - sets up, builds and runs the whole test suite, then the fuzzers:
#   1. under AddressSanitizer + UndefinedBehaviorSanitizer (CPU-only build, build-asan/);
#      any report aborts the test and fails the run;
#   2. the optimized build with the CUDA backend emulated on the CPU (build-emu/,
#      -DMILA_CUDA=EMULATE): every CPU test, and every CUDA case (ctest label `cuda`) run by
#      the project's own kernels on the emulator (docs/cuda.md);
#   3. when nvcc is found, the real CUDA kernels (build/): compiled for sm_80 and sm_90 with
#      warnings as errors (run where a GPU is: scripts/gpu_check.sh);
#   4. scripts/fuzz.sh: each file reader's libFuzzer target (clang, build-fuzz/) for a fixed
#      number of inputs from a fixed seed, at most a minute each; a crash fails the run.
# The CUDA cases of build 1 (a CPU-only build) are reported as skipped, never as passed.
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

cmake -S . -B build-emu -DCMAKE_BUILD_TYPE=Release -DMILA_CUDA=EMULATE > /dev/null
cmake --build build-emu -j "$jobs"
echo "== tests, optimized build, CUDA kernels on the CPU emulator =="
ctest --test-dir build-emu --output-on-failure -j "$jobs" 2>&1 | tee build-emu/ctest.log
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
# Under emulation every CUDA case must run: a skip here would be a pass that never happened.
if ! grep -q "Label Time Summary" build-emu/ctest.log || grep -q "(Skipped)" build-emu/ctest.log; then
  echo "test.sh: CUDA cases missing or skipped under emulation" >&2; exit 1
fi

if [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc > /dev/null; then
  # Compiled, not run: CI has no GPU (scripts/gpu_check.sh runs them on one).
  echo "== CUDA kernels, nvcc, sm_80 + sm_90, warnings as errors =="
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMILA_CUDA=ON > /dev/null
  cmake --build build -j "$jobs" --target mila_ops_cuda
fi

echo "== fuzz targets (scripts/fuzz.sh) =="
scripts/fuzz.sh
