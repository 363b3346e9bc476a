#!/usr/bin/env bash
# gpu_check.sh - everything that needs a real GPU, in one command of a few minutes, on a
# machine that has a GPU, nvcc, CMake and a host compiler but none of the project's other
# dependencies: those travel in .gpu-deps/ (scripts/gpu_deps.sh, run beforehand where the
# Debian packages are). docs/cuda.md, "Checking on a GPU", gives the whole call.
#
#   1. preflight: the GPU (nvidia-smi), nvcc, CMake, a C++ compiler with OpenMP, .gpu-deps/;
#      without a GPU it stops here, before building anything (exit 2)
#   2. configure build-gpu/ (-DMILA_CUDA=ON, sm_90 only, the dependencies from .gpu-deps/
#      alone) and build the test programs that hold CUDA cases and bench/bench_cuda_*
#   3. ctest -L cuda: every CUDA case against the CPU; a case reported as skipped fails the
#      check (here a skip can only mean the GPU was not seen)
#   4. the GPU benchmarks bench_cuda_*, when there are any
#   5. compute-sanitizer memcheck and racecheck on test_op_list, test_matmul and test_reduce
#      (--test-suite=cuda), all six at once, with whatever time is left
#
# Each stage has a time box inside a budget for the whole run (GPU_CHECK_BUDGET_S, 450 s);
# a stage cut short is reported INCOMPLETE, never as passed. The last lines printed are a
# table of the stages. Logs go to $OUT (the device tool's folder) or else build-gpu/logs/:
#   summary.txt  the machine, the tools, the table       build.log      configure and build
#   ctest.log    every CUDA case's output (ctest -V)      bench.log      the benchmark tables
#   sanitizer.log  the six compute-sanitizer runs
#
# Exit status: 0 every stage ran and passed; 1 a stage failed; 2 stopped before building
# (no GPU, a missing tool or .gpu-deps/); 3 nothing failed but a stage was cut short.
#
# Settings (environment):
#   GPU_CHECK_BUDGET_S=450          seconds for the whole run (a stage in flight at the end
#                                   gets 10 s more to stop)
#   GPU_CHECK_BUILD_ONLY=1          no GPU needed: preflight, configure and build, then stop
#                                   (checks the carried dependencies on any machine with nvcc)
#   GPU_CHECK_JOBS=N                build jobs (default: every core)
#   GPU_CHECK_SANITIZE="test_a ..." the test programs compute-sanitizer runs
set -uo pipefail  # no -e: a failing stage is recorded and the next one still runs
cd "$(dirname "$0")/.." || exit 2

start=$SECONDS
budget=${GPU_CHECK_BUDGET_S:-450}
build_only=${GPU_CHECK_BUILD_ONLY:-0}
jobs=${GPU_CHECK_JOBS:-$(nproc)}
sanitize=${GPU_CHECK_SANITIZE:-test_op_list test_matmul test_reduce}
deps=$PWD/.gpu-deps
build="build-gpu"
out=${OUT:-$build/logs}
runs_dir=$build/gpu_check_runs  # each run's own output, gathered into one log per stage
rm -rf "$runs_dir"
mkdir -p "$out" "$runs_dir"
summary=$out/summary.txt
: > "$summary"

say() { echo "$*" | tee -a "$summary"; }
left() { echo $((budget - (SECONDS - start))); }
# box <cap>: a stage's time box, its cap or what is left of the budget, whichever is less
# (at least a second: a stage with no time left is cut short and reported so).
box() { local l; l=$(left); [ "$l" -ge 1 ] || l=1; if [ "$1" -lt "$l" ]; then echo "$1"; else echo "$l"; fi; }
# run_boxed <seconds> <command...>: the command, stopped (TERM, then KILL) when its box ends.
run_boxed() { local s=$1; shift; timeout --signal=TERM --kill-after=10 "$s" "$@"; }
timed_out() { [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; }

stages=()
record() { stages+=("$(printf '%-12s %-10s %s' "$1" "$2" "$3")"); }
finish() {
  say ""
  say "== gpu_check: $(date -u '+%H:%M:%S UTC'), $((SECONDS - start)) s =="
  local s
  for s in "${stages[@]}"; do say "$s"; done
  local status=0
  if printf '%s\n' "${stages[@]}" | grep -qE '^[^ ]+ +FAIL'; then status=1
  elif printf '%s\n' "${stages[@]}" | grep -qE '^[^ ]+ +INCOMPLETE'; then status=3; fi
  local where=${OUT:+\$OUT}
  say "logs in ${where:-$out}: $(find "$out" -maxdepth 1 -type f -printf '%f\n' | sort | tr '\n' ' ')"
  exit "$status"
}
stop() {  # a preflight failure: nothing was built or run
  say "gpu_check: STOPPED before building: $*"
  exit 2
}

# ---- 1. preflight --------------------------------------------------------------------
say "== gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), budget ${budget} s =="
gpu=""
no_gpu="no nvidia-smi on this machine"
if command -v nvidia-smi > /dev/null; then
  if query=$(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader 2>&1) &&
     [ -n "$query" ]; then gpu=$query; else no_gpu="nvidia-smi lists none: $query"; fi
fi
if [ -n "$gpu" ]; then
  say "GPU: $gpu"
elif [ "$build_only" = 1 ]; then
  say "GPU: none ($no_gpu); GPU_CHECK_BUILD_ONLY=1: configure and build only"
else
  stop "no GPU ($no_gpu). GPU_CHECK_BUILD_ONLY=1 configures and builds without one."
fi

nvcc=/usr/local/cuda/bin/nvcc
[ -x "$nvcc" ] || nvcc=$(command -v nvcc) || stop "no nvcc (looked in /usr/local/cuda/bin and PATH)"
say "nvcc: $nvcc: $("$nvcc" --version | grep -i release)"
# cuBLAS (the GEMM baseline; CUDA::cublas) normally sits beside nvcc. Where the toolkit lacks
# it, the copy in the Python wheels (nvidia-cublas, which PyTorch uses) will do: CMake is
# given the libraries and the headers' folder.
cuda_root=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
cublas_args=()
if ! compgen -G "$cuda_root/lib*/libcublas.so*" > /dev/null &&
   ! compgen -G "$cuda_root/targets/*/lib/libcublas.so*" > /dev/null; then
  wheels=$(python3 -c 'import nvidia; print(*nvidia.__path__)' 2>/dev/null)
  # shellcheck disable=SC2086  # the wheels' folders, one word each
  lib=$(find $wheels -name 'libcublas.so.[0-9]*' 2>/dev/null | head -1)
  # shellcheck disable=SC2086
  lt=$(find $wheels -name 'libcublasLt.so.[0-9]*' 2>/dev/null | head -1)
  # shellcheck disable=SC2086
  header=$(find $wheels -name cublas_v2.h 2>/dev/null | head -1)
  if [ -z "$lib" ] || [ -z "$lt" ] || [ -z "$header" ]; then
    stop "no cuBLAS: none beside nvcc ($cuda_root) and none in python3's nvidia wheels"
  fi
  cublas_args=(-DCUDA_cublas_LIBRARY="$lib" -DCUDA_cublasLt_LIBRARY="$lt"
    -DCMAKE_CUDA_STANDARD_INCLUDE_DIRECTORIES="$(dirname "$header")")
  extra_include=";$(dirname "$header")"
  say "cuBLAS: from the wheels: $lib"
fi

command -v cmake > /dev/null || stop "no cmake"
cmake_version=$(cmake --version | head -1 | awk '{print $3}')
[ "$(printf '3.24\n%s\n' "$cmake_version" | sort -V | head -1)" = 3.24 ] || stop "cmake $cmake_version is older than 3.24"
generator=()
keep_going=(-k)
if command -v ninja > /dev/null; then generator=(-G Ninja); keep_going=(-k 0); fi
say "cmake: $cmake_version${generator[*]:+, ninja}"

cxx=${CXX:-}
if [ -z "$cxx" ]; then
  for c in g++ c++ clang++; do if command -v "$c" > /dev/null; then cxx=$(command -v "$c"); break; fi; done
fi
[ -n "$cxx" ] || stop "no C++ compiler (g++, c++ or clang++) for the host code"
say "host compiler: $cxx: $("$cxx" --version | head -1)"
# OpenMP comes with the compiler (omp.h, libgomp), not with .gpu-deps: check it works.
probe=$(mktemp -d)
printf '#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n' > "$probe/omp.cpp"
if ! "$cxx" -fopenmp "$probe/omp.cpp" -o "$probe/omp" > "$probe/log" 2>&1 || ! "$probe/omp"; then
  tee -a "$summary" < "$probe/log"
  stop "$cxx cannot build an OpenMP program (no omp.h or libgomp for it); the CPU kernels need OpenMP"
fi
rm -rf "$probe"

[ -f "$deps/MANIFEST" ] ||
  stop "no .gpu-deps/: run scripts/gpu_deps.sh on the development machine and name .gpu-deps in the call's carry"
say "carried: $(grep -v '^#' "$deps/MANIFEST" | tr '\n' ';')"

sanitizer=$(command -v compute-sanitizer) || sanitizer=""
for s in "$cuda_root/bin/compute-sanitizer" "$cuda_root/compute-sanitizer/compute-sanitizer"; do
  [ -n "$sanitizer" ] || { [ -x "$s" ] && sanitizer=$s; }
done
say "compute-sanitizer: ${sanitizer:-missing}"
say "cores: $(nproc), build jobs: $jobs"
[ -n "$gpu" ] && nvidia-smi >> "$summary" 2>&1
record preflight PASS "$(left) s of the budget left"

# ---- 2. configure and build ------------------------------------------------------------
# <Package>_DIR names the carried configs, so that no copy elsewhere on the machine is used;
# stb has no CMake package: its headers come through the compiler's include path.
say ""
say "== configure $build/ (sm_90, dependencies from .gpu-deps/) =="
configure=(cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMILA_CUDA=ON
  -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CXX_COMPILER="$cxx"
  -DCMAKE_CUDA_HOST_COMPILER="$cxx" -DMILA_BUILD_EXAMPLES=OFF -DMILA_BUILD_BENCH=ON
  -DCMAKE_PREFIX_PATH="$deps" -DCMAKE_CXX_STANDARD_INCLUDE_DIRECTORIES="$deps/include${extra_include:-}"
  -Ddoctest_DIR="$deps/lib/cmake/doctest" -Dnlohmann_json_DIR="$deps/lib/cmake/nlohmann_json"
  -DCLI11_DIR="$deps/lib/cmake/CLI11" -Dbenchmark_DIR="$deps/lib/cmake/benchmark" "${cublas_args[@]}")
if command -v ccache > /dev/null; then
  configure+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
run_boxed "$(box 120)" "${configure[@]}" > "$out/build.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
  tail -30 "$out/build.log"
  record configure "$(timed_out $rc && echo INCOMPLETE || echo FAIL)" "exit $rc (build.log)"
  finish
fi
for p in doctest nlohmann_json benchmark; do
  found=$(grep "^${p}_DIR:" "$build/CMakeCache.txt" | cut -d= -f2)
  [ "$found" = "$deps/lib/cmake/$p" ] || { record configure FAIL "$p found in '$found', not .gpu-deps"; finish; }
done
record configure PASS "doctest, nlohmann_json, benchmark: the carried configs"

# The targets: every test program with a .cuda ctest entry, and every GPU benchmark.
mapfile -t cuda_tests < <(ctest --test-dir "$build" -N -L cuda | sed -nE 's/^ *Test +#[0-9]+: ([^ ]+)\.cuda$/\1/p')
[ ${#cuda_tests[@]} -gt 0 ] || { record configure FAIL "no ctest entry has the label cuda"; finish; }
benches=()
for src in bench/bench_cuda_*.cpp; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .cpp)
  # Each target of a configured build has a folder CMakeFiles/<target>.dir (either generator).
  if [ -d "$build/CMakeFiles/$name.dir" ]; then benches+=("$name"); else
    say "note: $src is not a build target (Google Benchmark not found?)"; fi
done
say "== build: ${cuda_tests[*]} ${benches[*]} ($jobs jobs) =="
build_start=$SECONDS
run_boxed "$(box 330)" cmake --build "$build" -j "$jobs" --target "${cuda_tests[@]}" "${benches[@]}" \
  -- "${keep_going[@]}" >> "$out/build.log" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
  record build PASS "$((SECONDS - build_start)) s, ${#cuda_tests[@]} test programs, ${#benches[@]} benchmarks"
else
  grep -E "error|Error|FAILED" "$out/build.log" | head -30
  record build "$(timed_out $rc && echo INCOMPLETE || echo FAIL)" "exit $rc after $((SECONDS - build_start)) s (build.log); what built still runs"
fi
if [ "$build_only" = 1 ]; then finish; fi

# ---- 3. the CUDA cases -------------------------------------------------------------------
say ""
say "== ctest -L cuda =="
ctest_box=$(box 180)
run_boxed "$ctest_box" ctest --test-dir "$build" -L cuda -j 4 --timeout "$ctest_box" -V \
  > "$out/ctest.log" 2>&1
rc=$?
grep -E "Test +#[0-9]+:|tests passed|\[doctest\] test cases:" "$out/ctest.log" | tee -a "$summary"
ran=$(grep -cE "Test +#[0-9]+: .*(Passed|Failed|\*\*\*)" "$out/ctest.log")
if grep -qE "\*\*\*Skipped|\(Skipped\)" "$out/ctest.log"; then
  record ctest FAIL "CUDA cases reported as skipped: the tests did not see the GPU (ctest.log)"
elif timed_out $rc; then
  record ctest INCOMPLETE "cut short after ${ctest_box} s (ctest.log)"
elif [ $rc -ne 0 ]; then
  record ctest FAIL "exit $rc (ctest.log)"
elif [ "$ran" -ne ${#cuda_tests[@]} ]; then
  record ctest FAIL "$ran of ${#cuda_tests[@]} cuda entries ran (ctest.log)"
else
  record ctest PASS "${#cuda_tests[@]} cuda entries: $(grep -m1 'tests passed' "$out/ctest.log")"
fi

# ---- 4. GPU benchmarks -------------------------------------------------------------------
if [ ${#benches[@]} -eq 0 ]; then
  record bench n/a "no bench/bench_cuda_*.cpp"
else
  say ""
  say "== benchmarks: ${benches[*]} =="
  bench_status=PASS
  bench_why=""
  : > "$out/bench.log"
  for b in "${benches[@]}"; do
    if [ ! -x "$build/$b" ]; then bench_status=FAIL; bench_why+=" $b not built;"; continue; fi
    run_boxed "$(box 90)" "$build/$b" --benchmark_min_time=0.2 --benchmark_counters_tabular=true \
      > "$runs_dir/$b.txt" 2>&1
    rc=$?
    tee -a "$out/bench.log" < "$runs_dir/$b.txt"
    # A benchmark that skips (SkipWithError) says ERROR OCCURRED: on a GPU none should.
    if timed_out $rc; then
      [ $bench_status = FAIL ] || bench_status=INCOMPLETE; bench_why+=" $b cut short;"
    elif [ $rc -ne 0 ]; then bench_status=FAIL; bench_why+=" $b exit $rc;"
    elif grep -q "ERROR OCCURRED" "$runs_dir/$b.txt"; then bench_status=FAIL; bench_why+=" $b: ERROR OCCURRED;"; fi
  done
  record bench "$bench_status" "${benches[*]}${bench_why:+ -}${bench_why} (bench.log)"
fi

# ---- 5. compute-sanitizer ------------------------------------------------------------------
# Memory errors (memcheck) and shared-memory hazards (racecheck) in the project's own kernels,
# on the test programs that launch the most of them. API errors are left to the tests
# (CUDA_CHECK turns each into a failure); leaks are not checked: the caching allocator keeps
# its blocks until the process ends, by design.
targets=()
for t in $sanitize; do
  if [[ " ${cuda_tests[*]} " == *" $t "* ]] && [ -x "$build/$t" ]; then targets+=("$t"); fi
done
if [ -z "$sanitizer" ]; then
  record sanitizer INCOMPLETE "compute-sanitizer not found"
elif [ ${#targets[@]} -eq 0 ]; then
  record sanitizer INCOMPLETE "none of '$sanitize' has CUDA cases and was built"
elif [ "$(left)" -lt 30 ]; then
  record sanitizer INCOMPLETE "no time left in the budget"
else
  say ""
  sanitizer_box=$(box 240)
  say "== compute-sanitizer memcheck + racecheck: ${targets[*]}, all at once, ${sanitizer_box} s each at most =="
  pids=()
  runs=()
  for t in "${targets[@]}"; do
    for tool in memcheck racecheck; do
      (
        run_boxed "$sanitizer_box" env OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE "$sanitizer" --tool "$tool" \
          --error-exitcode 86 --report-api-errors no --print-limit 20 "$build/$t" --test-suite=cuda \
          > "$runs_dir/$t.$tool.txt" 2>&1
        echo $? > "$runs_dir/$t.$tool.rc"
      ) &
      pids+=($!)
      runs+=("$t.$tool")
    done
  done
  wait "${pids[@]}"
  sanitizer_status=PASS
  : > "$out/sanitizer.log"
  for r in "${runs[@]}"; do
    rc=$(cat "$runs_dir/$r.rc")
    # The reports printed before a run was cut short still count.
    found=$(grep -cE '^========= (Invalid|Misaligned|Error:|Program hit|Out-of-range)' "$runs_dir/$r.txt")
    case $rc in
      0) verdict=PASS ;;
      124 | 137) if [ "$found" -gt 0 ]; then verdict="FAIL (cut short, $found reports)"; else verdict=INCOMPLETE; fi ;;
      86) verdict="FAIL (errors found)" ;;
      77) verdict="FAIL (no device seen)" ;;
      *) verdict="FAIL (exit $rc)" ;;
    esac
    summary_line=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|\[doctest\] test cases:" "$runs_dir/$r.txt" | tr '\n' ' ')
    say "$r: $verdict ${summary_line}"
    { echo "===== $r: $verdict"; cat "$runs_dir/$r.txt"; echo; } >> "$out/sanitizer.log"
    case $verdict in
      FAIL*) sanitizer_status=FAIL ;;
      INCOMPLETE) [ $sanitizer_status = FAIL ] || sanitizer_status=INCOMPLETE ;;
    esac
  done
  record sanitizer "$sanitizer_status" "${#runs[@]} runs (sanitizer.log)"
fi

finish
