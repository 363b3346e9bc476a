#!/usr/bin/env python3
"""Writes tests/data/mila_reference.h: what tests/test_mila_reference.cpp compares MILA-cpp with.

The model is tools/mila_torch.py (MILA in PyTorch, written from SPEC.md), run in float64 so the
reference carries no float32 rounding of its own. A tiny configuration:

    slow_depth 18, fast_depth 18, width 8, C 16, D 8, L 3, K 2,
    tasks seg 5 / depth 1 / normal 3, task_specific, multi_frame

Weights and inputs are closed formulas that the C++ test evaluates too (no weight file is
stored). With j the index of a tensor's name in the SORTED list of all state_dict() names and
i the element index (row-major), u = sin(0.37 i + 1.3 j + 0.001 i i) (a chirp: a plain
sinusoid makes every filter smooth, and its gain on smooth images blows activations up):

    *.running_var                      1 + 0.5 u^2
    *.running_mean                     0.1 u
    *.num_batches_tracked              left at 0
    0-d tensors (uncertainty.<task>)   0.2 sin(1.3 j)
    other 1-d "*.weight" (BN gamma)    1 + 0.2 u
    other 1-d tensors (biases)         0.1 u
    tensors of 2 or more dims          2 u / sqrt(numel / shape[0])   (He-like: variance 2 / fan_in)

    clip frames [T=3, B=2, 3, 32, 40], element i:   sin(0.05 i) + 0.3 cos(0.011 i)
    seg label [B, H, W], element i:                 (7 i + i / 40) mod 6, and 5 -> 255 (ignored)
    depth [B, 1, H, W], element i:                  1 + 0.5 sin(0.07 i), and 0 (invalid) when i mod 5 = 0
    normal [B, 3, H, W], element i at pixel p:      sin(0.03 i + 1), and 0 for all 3 when p mod 6 = 0
                                                    (p = b H W + y W + x, the pixel's index in [B, H, W])

What is stored:
  - state: every state_dict() name and shape, in sorted order (the names SPEC 4.1 fixes).
  - eval: the eval-mode clip forward of the 3 frames with t0 = 1 (frame 0 precedes the first
    keyframe, frame 1 is one, frame 2 is Fast again): per frame and task a checksum (sum, sum of
    squares, sum of |x|, max |x| and 16 sampled values with their flat indices).
  - train_a: the training losses of a clip of the first 2 frames, t0 = 0 (frame 0 Slow, frame 1
    Fast: the mimic pass is an extra Slow pass without gradient), weighting equal; the task
    losses, l1, disc, total; gradient checksums of chosen parameters after total.backward();
    checksums of BN buffers after the step (running stats updated by every training pass).
    A parameter that gets no gradient at all (no graph path) has maxabs -1 and no values.
  - train_b: a clip of the first frame alone (a keyframe: the mimic pass is an extra Fast pass),
    weighting uncertainty, depth all invalid (its loss is 0); the same quantities.

    /usr/bin/python3 tools/gen_mila_reference.py > tests/data/mila_reference.h
"""
import math
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mila_torch import Config, Mila, ila, training_losses  # noqa: E402

T, B, H, W = 3, 2, 32, 40


def tiny_config(weighting="equal"):
    return Config(slow_depth=18, fast_depth=18, width=8, C=16, D=8, L=3, K=2,
                  tasks=[("seg", 5), ("depth", 1), ("normal", 3)], task_specific=True, multi_frame=True,
                  weighting=weighting)


def fill(model):
    state = model.state_dict()
    with torch.no_grad():
        for j, name in enumerate(sorted(state)):
            t = state[name]
            if name.endswith("num_batches_tracked"):
                continue
            i = torch.arange(t.numel(), dtype=torch.float64)
            u = torch.sin(0.37 * i + 1.3 * j + 0.001 * i * i)
            if name.endswith("running_var"):
                v = 1 + 0.5 * u * u
            elif name.endswith("running_mean"):
                v = 0.1 * u
            elif t.dim() == 0:
                v = torch.tensor(0.2 * math.sin(1.3 * j), dtype=torch.float64)
            elif t.dim() == 1:
                v = 1 + 0.2 * u if name.endswith("weight") else 0.1 * u
            else:
                v = 2 * u / math.sqrt(t.numel() / t.shape[0])
            t.copy_(v.reshape(t.shape))


def inputs():
    i = torch.arange(T * B * 3 * H * W, dtype=torch.float64)
    frames = (torch.sin(0.05 * i) + 0.3 * torch.cos(0.011 * i)).reshape(T, B, 3, H, W)
    k = torch.arange(B * H * W)
    seg = (7 * k + k // 40) % 6
    seg[seg == 5] = 255
    seg = seg.reshape(B, H, W)
    i = torch.arange(B * H * W, dtype=torch.float64)
    depth = 1 + 0.5 * torch.sin(0.07 * i)
    depth[torch.arange(B * H * W) % 5 == 0] = 0
    depth = depth.reshape(B, 1, H, W)
    i = torch.arange(B * 3 * H * W)
    normal = torch.sin(0.03 * i.double() + 1)
    b, rest = i // (3 * H * W), i % (H * W)
    normal[(b * H * W + rest) % 6 == 0] = 0
    normal = normal.reshape(B, 3, H, W)
    return frames, seg, depth, normal


def check_ila():
    """ila() against SPEC 4.2 written as loops (offsets outside the map left out; L = 0 global)."""
    g = torch.Generator().manual_seed(0)
    a, b, v = (torch.randn(1, n, 4, 5, dtype=torch.float64, generator=g) for n in (3, 3, 2))
    for L in (3, 5, 0):
        want = torch.zeros_like(v)
        for y in range(4):
            for x in range(5):
                if L == 0:
                    cand = [(yy, xx) for yy in range(4) for xx in range(5)]
                else:
                    r = (L - 1) // 2
                    cand = [(y + dy, x + dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
                            if 0 <= y + dy < 4 and 0 <= x + dx < 5]
                logits = torch.stack([(a[0, :, y, x] * b[0, :, yy, xx]).sum() for yy, xx in cand])
                w = torch.softmax(logits, 0)
                for (yy, xx), wk in zip(cand, w):
                    want[0, :, y, x] += wk * v[0, :, yy, xx]
        assert torch.allclose(ila(a, b, v, L), want, atol=1e-12), f"ila L={L}"


def picks(n, count=16):
    return sorted({(k * 104729 + 17 * k * k + 3) % n for k in range(count)})


def checksum(what, t, count=16):
    if t is None:  # a parameter that gets no gradient: maxabs -1 marks it
        return f'  {{"{what}", {{}}, 0, 0, 0, -1, {{}}, {{}}}},'
    f = t.detach().double().flatten()
    idx = picks(f.numel(), count)
    vals = ", ".join(f"{f[p].item():.17g}" for p in idx)
    return (f'  {{"{what}", {{{", ".join(str(s) for s in t.shape)}}}, {f.sum().item():.17g}, '
            f'{(f * f).sum().item():.17g}, {f.abs().sum().item():.17g}, {f.abs().max().item():.17g},\n'
            f'   {{{", ".join(str(p) for p in idx)}}},\n   {{{vals}}}}},')


GRADS = ["slow.conv1.weight", "slow.layer4.1.conv2.weight", "slow_neck.1.weight", "fast.conv1.weight",
         "fast.layer1.0.conv1.weight", "fast_neck.0.weight", "decoders.seg.ila.h.weight", "decoders.seg.se.fc1.weight",
         "decoders.depth.se.fc2.bias", "decoders.normal.head.0.weight", "decoders.normal.head.6.bias",
         "disc.0.weight", "disc.4.bias"]
BUFFERS = ["slow.bn1.running_mean", "slow_neck.1.running_var", "fast.layer4.1.bn2.running_mean",
           "fast_neck.1.running_var", "decoders.seg.head.1.running_mean"]


def training_case(label, weighting, nframes, depth_valid, frames, seg, depth, normal):
    model = Mila(tiny_config(weighting)).double()
    fill(model)
    model.train()
    batch = {"frames": frames[:nframes], "t0": 0, "seg": seg, "depth": depth if depth_valid else torch.zeros_like(depth),
             "normal": normal}
    terms = training_losses(model, batch)
    terms["total"].backward()
    out = [f"// {label}: {nframes} frame(s), t0 0, weighting {weighting}, depth {'valid' if depth_valid else 'all invalid'}",
           f"inline const std::vector<std::pair<const char*, double>> {label}_losses = {{"]
    out += [f'  {{"{k}", {v.item():.17g}}},' for k, v in terms.items()]
    out.append("};")
    params = dict(model.named_parameters())
    names = GRADS + (["uncertainty.seg", "uncertainty.depth"] if weighting == "uncertainty" else [])
    out.append(f"inline const std::vector<Checksum> {label}_grads = {{")
    out += [checksum(n, params[n].grad, 8) for n in names]
    out.append("};")
    buffers = dict(model.named_buffers())
    out.append(f"inline const std::vector<Checksum> {label}_buffers = {{")
    out += [checksum(n, buffers[n], 8) for n in BUFFERS]
    out.append("};")
    out.append(f"inline const std::vector<std::pair<const char*, int64_t>> {label}_batches_tracked = {{")
    out += [f'  {{"{n}", {buffers[n].item()}}},' for n in ("slow.bn1.num_batches_tracked", "fast.bn1.num_batches_tracked",
                                                          "slow_neck.1.num_batches_tracked", "fast_neck.1.num_batches_tracked",
                                                          "decoders.seg.head.1.num_batches_tracked")]
    out.append("};\n")
    return "\n".join(out)


def main():
    torch.set_num_threads(2)
    check_ila()
    frames, seg, depth, normal = inputs()
    print("// Generated by tools/gen_mila_reference.py (torch %s, torchvision %s, float64); do not edit:" %
          (torch.__version__, torchvision.__version__))
    print("//     /usr/bin/python3 tools/gen_mila_reference.py > tests/data/mila_reference.h")
    print("// The model, weights and inputs are described in the script's docstring.")
    print("#pragma once\n#include <cstdint>\n#include <utility>\n#include <vector>\n")
    print("namespace mila_reference {\n")
    print("struct NameShape { const char* name; std::vector<int64_t> shape; };")
    print("// A tensor summarized: sums over all elements, and some elements at flat indices.")
    print("struct Checksum { const char* what; std::vector<int64_t> shape; double sum, sumsq, sumabs, maxabs;")
    print("                  std::vector<int64_t> index; std::vector<double> value; };\n")

    model = Mila(tiny_config()).double()
    state = model.state_dict()
    print("// Every state_dict() name of the tiny configuration (weighting equal), sorted.")
    print("inline const std::vector<NameShape> state = {")
    for n in sorted(state):
        print(f'  {{"{n}", {{{", ".join(str(s) for s in state[n].shape)}}}}},')
    print("};\n")

    fill(model)
    model.eval()
    with torch.no_grad():
        outputs, _ = model.forward_clip(frames, 1)
    print("// Eval-mode forward_clip of the 3 frames, t0 = 1: \"frame<t>/<task>\", each [B, channels, H, W].")
    print("inline const std::vector<Checksum> eval_outputs = {")
    for t in range(T):
        for task, _ in model.cfg.tasks:
            print(checksum(f"frame{t}/{task}", outputs[t][task]))
    print("};\n")

    print(training_case("train_a", "equal", 2, True, frames, seg, depth, normal))
    print(training_case("train_b", "uncertainty", 1, False, frames, seg, depth, normal))
    print("}  // namespace mila_reference")


if __name__ == "__main__":
    main()
