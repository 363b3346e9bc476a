#!/usr/bin/env python3
"""The PyTorch side of bench/bench_mila.cpp: MILA (tools/mila_torch.py) on torch's CPU backend
with 2 threads, the same configurations, work and timing method.

    train_<cfg>    one Adam step (lr 1e-4, betas (0.9, 0.99)): zero_grad + training_losses
                   (SPEC 4.4) + backward + step, on a clip of 3 frames with its keyframe first
    stream_<cfg>   eval mode, no_grad: forward_clip on a clip of K frames (one keyframe cycle,
                   t0 = 0), reported per frame (time / K), as bench_mila does

    small: slow and fast ResNet-18, width 16, C 64, D 16, L 5, K 3, 96x128, batch 4
    paper: ResNet-101 / ResNet-18, width 64, C 256, D 64, L 5, K 5, 288x384, batch 1
Tasks seg 13, depth 1, normal 3; float32.

Timing: one untimed warm-up call, then single-call repetitions (small 5, paper 3); the median
is the figure, the minimum is printed too. Each case runs in its own process (this script
calls itself with --case), so its peak RSS (getrusage ru_maxrss) is that case's alone.

    /usr/bin/python3 tools/bench_mila_torch.py                 # all four cases
    /usr/bin/python3 tools/bench_mila_torch.py --case train_small
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mila_torch import Config, Mila, training_losses  # noqa: E402

CASES = ["train_small", "stream_small", "train_paper", "stream_paper"]
TASKS = [("seg", 13), ("depth", 1), ("normal", 3)]


def make_case(paper):
    if paper:
        return Config(tasks=TASKS), 288, 384, 1
    return Config(slow_depth=18, fast_depth=18, width=16, C=64, D=16, L=5, K=3, tasks=TASKS), 96, 128, 4


def make_batch(H, W, B, frames):
    g = torch.Generator().manual_seed(7)
    return {"frames": torch.randn(frames, B, 3, H, W, generator=g), "t0": 0,
            "seg": torch.randint(0, 13, (B, H, W), generator=g),
            "depth": torch.rand(B, 1, H, W, generator=g) + 0.5,
            "normal": torch.rand(B, 3, H, W, generator=g) - 0.5}


def run_case(name):
    torch.set_num_threads(2)
    kind, cfg_name = name.split("_")
    cfg, H, W, B = make_case(cfg_name == "paper")
    reps = 3 if cfg_name == "paper" else 5
    model = Mila(cfg)
    if kind == "train":
        model.train()
        adam = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99), eps=1e-8)
        batch = make_batch(H, W, B, 3)

        def call():
            adam.zero_grad()
            terms = training_losses(model, batch)
            terms["total"].backward()
            adam.step()
            return terms["total"].item()
        per = 1
    else:
        model.eval()
        clip = make_batch(H, W, B, cfg.K)["frames"]

        def call():
            with torch.no_grad():
                return model.forward_clip(clip, 0)[0][-1]["seg"].sum().item()
        per = cfg.K
    call()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1e3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    unit = "ms/step" if kind == "train" else f"ms/frame (a clip of K = {cfg.K} frames / {cfg.K})"
    print(f"{name:14s} median {statistics.median(times) / per:9.1f} min {min(times) / per:9.1f} {unit}, "
          f"{reps} reps; peak RSS {rss:7.0f} MiB; load {open('/proc/loadavg').read().split()[0]}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=CASES)
    a = p.parse_args()
    if a.case:
        run_case(a.case)
        return
    print(f"torch {torch.__version__}, 2 threads")
    for c in CASES:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--case", c], check=True)


if __name__ == "__main__":
    main()
