#!/usr/bin/env bash
# run.sh - the project's main job in one command: sets up, builds, renders the synthetic
# NYUv2-style video set (once, into ~/.cache/mila-cpp) and trains MILA's small configuration
# on it with examples/train_nyu, then prints the validation metrics next to a
# constant-prediction baseline and says where the pictures and the loss curves are.
#
#   scripts/run.sh                      the default run (about 9 minutes on 2 quiet cores)
#   scripts/run.sh --steps 2000 --out runs/long      any train_nyu flag passes through
#
# train_nyu refuses to start over in a folder that holds a run (it would replace that run's
# checkpoints). So that the default command can be run again, a previous run in the default
# folder, runs/train_nyu, is first moved aside to runs/train_nyu.<its date>, unless the
# command names --out or --resume itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$(nproc)" --target train_nyu
if [[ " $* " != *" --out"* && " $* " != *" --resume"* && -d runs/train_nyu ]]; then
  kept="runs/train_nyu.$(date -r runs/train_nyu +%Y%m%d-%H%M%S)"
  mv runs/train_nyu "$kept"
  echo "run.sh: the previous run is now in $kept"
fi
./build/train_nyu --schedule cosine "$@"
