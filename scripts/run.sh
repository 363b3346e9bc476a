#!/usr/bin/env bash
# run.sh - the project's main job in one command: sets up, builds, renders the synthetic
# NYUv2-style video set (once, into ~/.cache/mila-cpp) and trains MILA's small configuration
# on it with examples/train_nyu, then prints the validation metrics next to a
# constant-prediction baseline and says where the pictures and the loss curves are.
#
#   scripts/run.sh                      the default run (about 9 minutes on 2 quiet cores)
#   scripts/run.sh --steps 2000 --out runs/long      any train_nyu flag passes through
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$(nproc)" --target train_nyu
./build/train_nyu --schedule cosine "$@"
