#!/usr/bin/env bash
# fuzz.sh - builds the libFuzzer targets of tests/fuzz/ with clang in build-fuzz/ (every
# library instrumented, AddressSanitizer + UBSan: the CMake option MILA_FUZZ) and runs each
# on a copy of its seed corpus. Fails on any crash, sanitizer report, leak or slow input.
#
#   scripts/fuzz.sh                  each target for 20000 inputs (capped at 60 s): CI's stage
#   scripts/fuzz.sh -r 100000        each target for 100000 inputs (capped at 60 s)
#   scripts/fuzz.sh -t 600           each target for 600 seconds, no input cap
#   scripts/fuzz.sh -c               regenerate the seed corpus tests/fuzz/corpus/ and stop
#   scripts/fuzz.sh ... image        only the named targets (safetensors, image, config)
#
# The seed is fixed (-s to change it), so a failure in CI repeats on a developer's machine.
# A failing input is saved as build-fuzz/findings/<target>/crash-* (or leak-*, timeout-*,
# oom-*); `build-fuzz/fuzz_<target> FILE` replays it. Inputs that reached new code go to
# build-fuzz/corpus/<target>/, never into the repository's seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=20000
seconds=60
seed=1
regenerate=0
while getopts "r:t:s:c" opt; do
  case $opt in
    r) runs=$OPTARG ;;
    t) seconds=$OPTARG; runs=-1 ;;
    s) seed=$OPTARG ;;
    c) regenerate=1 ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors image config)

CXX=${FUZZ_CXX:-clang++} cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMILA_FUZZ=ON \
      -DMILA_BUILD_TESTS=OFF -DMILA_BUILD_BENCH=OFF -DMILA_BUILD_EXAMPLES=OFF > /dev/null
if [ $regenerate -eq 1 ]; then
  cmake --build build-fuzz -j "$(nproc)" --target make_fuzz_corpus
  build-fuzz/make_fuzz_corpus tests/fuzz/corpus
  exit 0
fi
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

# Leaks count as failures; the first report ends the run.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t findings=build-fuzz/findings/$t
  rm -rf "$work" "$findings"
  mkdir -p "$work" "$findings"
  cp tests/fuzz/corpus/"$t"/* "$work"/
  if [ "$runs" -ge 0 ]; then limit="$runs inputs or $seconds s"; else limit="$seconds s"; fi
  echo "== fuzz_$t: $limit, seed $seed =="
  if ! build-fuzz/fuzz_"$t" "$work" -runs="$runs" -max_total_time="$seconds" -seed="$seed" -timeout=10 \
         -print_final_stats=1 -artifact_prefix="$findings"/ > "$findings"/log.txt 2>&1; then
    tail -n 60 "$findings"/log.txt
    echo "fuzz_$t FAILED: the input is in $findings/ (replay: build-fuzz/fuzz_$t FILE)"
    status=1
    continue
  fi
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$findings"/log.txt || true
  echo "fuzz_$t: no crash; corpus $(ls "$work" | wc -l) files (from $(ls tests/fuzz/corpus/"$t" | wc -l) seeds)"
done
exit $status
