#!/usr/bin/env bash
# bench.sh - builds the benchmarks (Release, -march=native) and runs every one of them, or
# those named, writing Google Benchmark's console table and a JSON file per benchmark to
# bench/out/<date>-<host>/ (ignored by git). bench/RESULTS.md holds the curated figures.
#
#   scripts/bench.sh                      all of bench/bench_*.cpp (about 15 minutes on 2 cores)
#   scripts/bench.sh gemm ila             bench_gemm and bench_ila only
#   BENCH_ARGS='--benchmark_filter=/T1' scripts/bench.sh conv2d     extra Google Benchmark flags
#
# Benchmarks want a quiet machine: a second process on one of the two cores halves a
# two-thread figure. The script prints the load average before each benchmark so that a
# noisy run can be recognized; run it again when the load is high.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMILA_BUILD_BENCH=ON > /dev/null
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in bench/bench_*.cpp; do n=$(basename "$f" .cpp); names+=("${n#bench_}"); done
fi
targets=()
for n in "${names[@]}"; do targets+=("bench_$n"); done
cmake --build build -j "$(nproc)" --target "${targets[@]}"

out="bench/out/$(date -u +%Y-%m-%dT%H%M)-$(hostname)"
mkdir -p "$out"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)"
  echo "compiler: $(c++ --version | head -1)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} | tee "$out/machine.txt"
for n in "${names[@]}"; do
  echo "== bench_$n (load average: $(cut -d' ' -f1-3 /proc/loadavg)) =="
  # shellcheck disable=SC2086
  ./build/"bench_$n" --benchmark_min_time=0.2 --benchmark_out="$out/bench_$n.json" --benchmark_out_format=json \
    ${BENCH_ARGS:-} | tee "$out/bench_$n.txt"
done
echo "results in $out"
