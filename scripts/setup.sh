#!/usr/bin/env bash
# setup.sh - installs the Debian packages MILA-cpp builds with; skips what is installed.
# Run as root on a fresh machine (uses sudo when it exists and we are not root).
#
#   build:       cmake, g++ (12, C++20), make
#   core:        nlohmann-json3-dev (JSON for checkpoints' headers and configs),
#                libcli11-dev (command lines of the examples), libstb-dev (image files)
#   tests:       doctest-dev; libboost-context-dev (the CUDA emulator's fibers, -DMILA_CUDA=EMULATE)
#   fuzzing:     clang (clang++ 14 on Debian 12), libclang-rt-dev (its runtimes: libFuzzer,
#                AddressSanitizer, UBSan; without it -fsanitize=fuzzer does not link) and
#                libomp-dev (OpenMP for clang): scripts/fuzz.sh
#   benchmarks:  libbenchmark-dev (Google Benchmark), libeigen3-dev and libdnnl-dev (oneDNN),
#                the baselines our kernels are measured against; ocl-icd-opencl-dev because
#                Debian's oneDNN is built with its OpenCL GPU runtime and its CMake package
#                config fails without OpenCL's headers (apt only recommends it)
# Nothing is downloaded at build time. The CUDA toolkit, when present, is /usr/local/cuda.
set -euo pipefail

packages=(cmake g++ make libeigen3-dev libstb-dev doctest-dev libbenchmark-dev libdnnl-dev
          ocl-icd-opencl-dev nlohmann-json3-dev libcli11-dev clang libclang-rt-dev libomp-dev
          libboost-context-dev)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then as_root=(sudo); else
    echo "setup: need root to install ${missing[*]} (run this script as root)" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
