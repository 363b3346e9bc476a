#!/usr/bin/env bash
# run.sh - sets up, builds and runs the main job: for now the demonstration of tensors and
# autograd (examples/demo_fit); it becomes examples/train_nyu once the model lands.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$(nproc)" --target demo_fit
./build/demo_fit "$@"
