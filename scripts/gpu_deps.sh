#!/usr/bin/env bash
# gpu_deps.sh - gathers into .gpu-deps/ (ignored by git) the libraries the nvcc build needs
# that a bare GPU machine lacks, so that they travel with the working tree and
# scripts/gpu_check.sh can build there (docs/cuda.md, "Checking on a GPU").
#
# The GPU machines have nvcc, cuBLAS, CMake, ninja and a host compiler, but none of Debian's
# -dev packages. Carried, from this machine's packages (scripts/setup.sh installs them):
#
#   doctest        the test runner (headers)                       find_package(doctest)
#   nlohmann-json  configs, safetensors headers (headers)           find_package(nlohmann_json 3)
#   CLI11          the examples' command lines (headers)            find_package(CLI11)
#   stb            image files: only the headers data/ includes     #include <stb/...>
#   benchmark      Google Benchmark for bench/bench_cuda_*.cpp      find_package(benchmark)
#                  (headers and the shared library: Debian ships no static one)
#
# Not carried: Eigen and oneDNN (only the CPU benchmarks use them; bench_cuda_* do not),
# Boost.Context (only the emulation build uses it), OpenMP and Threads (they come with the
# compiler and the C library; gpu_check.sh checks OpenMP before it configures).
#
# The CMake package configs are written here rather than copied: Debian's hard-code /usr
# (doctest's) or its library folder (benchmark's). Each one says where it came from. The
# folder is a few MiB; MANIFEST inside it lists every package and its version.
set -euo pipefail
cd "$(dirname "$0")/.."

deps=.gpu-deps
packages=(doctest-dev nlohmann-json3-dev libcli11-dev libstb-dev libbenchmark-dev libbenchmark1debian)
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "gpu_deps: package $p is not installed here (scripts/setup.sh installs it)" >&2
    exit 1
  fi
done

# upstream_version <package>: 2.4.9~ds-1 -> 2.4.9, 1:2.0-3 -> 2.0
upstream_version() {
  dpkg-query -W -f='${Version}' "$1" | sed -e 's/^[0-9]*://' -e 's/[~+-].*//'
}

# package_file <package> <path regex>: the one file of the package whose path matches.
package_file() {
  local found
  found=$(dpkg -L "$1" | grep -E "$2" | while read -r f; do [ -f "$f" ] && echo "$f"; done)
  if [ "$(printf '%s\n' "$found" | grep -c .)" -ne 1 ]; then
    echo "gpu_deps: expected one file matching '$2' in $1, found: ${found:-none}" >&2
    exit 1
  fi
  echo "$found"
}

# write_version_file <name> <version>: a <name>ConfigVersion.cmake accepting any request of
# the same major version no newer than <version> (CMake's SameMajorVersion).
write_version_file() {
  local name=$1 version=$2
  cat > "$deps/lib/cmake/$name/${name}ConfigVersion.cmake" <<EOF
# Written by scripts/gpu_deps.sh: $name $version, same-major-version compatibility.
set(PACKAGE_VERSION "$version")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif(PACKAGE_FIND_VERSION_MAJOR AND NOT PACKAGE_FIND_VERSION_MAJOR STREQUAL "${version%%.*}")
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
EOF
}

# write_header_only_config <name> <target> <package> <version>: a config defining one
# INTERFACE target whose include folder is .gpu-deps/include.
write_header_only_config() {
  local name=$1 target=$2 package=$3 version=$4
  mkdir -p "$deps/lib/cmake/$name"
  cat > "$deps/lib/cmake/$name/${name}Config.cmake" <<EOF
# Written by scripts/gpu_deps.sh from Debian's $package $version: headers only.
get_filename_component(_gpu_deps_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET $target)
  add_library($target INTERFACE IMPORTED)
  set_target_properties($target PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "\${_gpu_deps_prefix}/include")
endif()
unset(_gpu_deps_prefix)
EOF
  write_version_file "$name" "$version"
}

rm -rf "$deps"
mkdir -p "$deps/include" "$deps/lib/cmake"

# Headers: whole folders (they include each other), except stb, whose folder holds twenty
# unrelated libraries: only the headers the sources name.
cp -r "$(dirname "$(package_file doctest-dev '/doctest\.h$')")" "$deps/include/"
cp -r "$(dirname "$(package_file nlohmann-json3-dev '/nlohmann/json\.hpp$')")" "$deps/include/"
cp -r "$(dirname "$(package_file libcli11-dev '/CLI/CLI\.hpp$')")" "$deps/include/"
cp -r "$(dirname "$(package_file libbenchmark-dev '/benchmark/benchmark\.h$')")" "$deps/include/"
mkdir -p "$deps/include/stb"
stb_headers=$(grep -rhoE --include='*.cpp' --include='*.h' --include='*.cu' '<stb/[A-Za-z0-9_]+\.h>' \
                tensor autograd ops nn data mila tests examples bench | tr -d '<>' | sort -u)
[ -n "$stb_headers" ] || { echo "gpu_deps: no #include <stb/...> found in the sources" >&2; exit 1; }
for h in $stb_headers; do
  cp "$(package_file libstb-dev "/$h\$")" "$deps/include/stb/"
done

write_header_only_config doctest doctest::doctest doctest-dev "$(upstream_version doctest-dev)"
write_header_only_config nlohmann_json nlohmann_json::nlohmann_json nlohmann-json3-dev \
  "$(upstream_version nlohmann-json3-dev)"
write_header_only_config CLI11 CLI11::CLI11 libcli11-dev "$(upstream_version libcli11-dev)"

# Google Benchmark: the shared library under its soname (the name the programs ask the loader
# for; a plain file, not a link), and benchmark_main. CMake gives the programs that link it an
# RPATH to this folder, so nothing needs LD_LIBRARY_PATH.
benchmark_so=$(package_file libbenchmark1debian '/libbenchmark\.so\.[0-9.]+$')
benchmark_soname=$(objdump -p "$benchmark_so" | awk '$1 == "SONAME" {print $2}')
cp "$benchmark_so" "$deps/lib/$benchmark_soname"
cp "$(package_file libbenchmark-dev '/libbenchmark_main\.a$')" "$deps/lib/"
benchmark_version=$(upstream_version libbenchmark-dev)
mkdir -p "$deps/lib/cmake/benchmark"
cat > "$deps/lib/cmake/benchmark/benchmarkConfig.cmake" <<EOF
# Written by scripts/gpu_deps.sh from Debian's libbenchmark-dev $benchmark_version.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
get_filename_component(_gpu_deps_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET benchmark::benchmark)
  add_library(benchmark::benchmark SHARED IMPORTED)
  set_target_properties(benchmark::benchmark PROPERTIES
    IMPORTED_LOCATION "\${_gpu_deps_prefix}/lib/$benchmark_soname"
    IMPORTED_SONAME "$benchmark_soname"
    INTERFACE_INCLUDE_DIRECTORIES "\${_gpu_deps_prefix}/include"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
  add_library(benchmark::benchmark_main STATIC IMPORTED)
  set_target_properties(benchmark::benchmark_main PROPERTIES
    IMPORTED_LOCATION "\${_gpu_deps_prefix}/lib/libbenchmark_main.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES CXX
    INTERFACE_LINK_LIBRARIES benchmark::benchmark)
endif()
unset(_gpu_deps_prefix)
EOF
write_version_file benchmark "$benchmark_version"

{
  echo "# .gpu-deps: written by scripts/gpu_deps.sh on $(date -u '+%Y-%m-%d %H:%M UTC') from Debian packages"
  for p in "${packages[@]}"; do echo "$p $(dpkg-query -W -f='${Version}' "$p")"; done
  echo "stb headers: $stb_headers" | tr '\n' ' '
  echo
} > "$deps/MANIFEST"

echo "gpu_deps: $deps/ holds $(find "$deps" -type f | wc -l) files, $(du -sh "$deps" | cut -f1)"
cat "$deps/MANIFEST"
