#!/usr/bin/env python3
"""Convert a PyTorch checkpoint (.pth state dict, e.g. torchvision's ImageNet ResNets) to
safetensors, the format MILA-cpp reads (SPEC section 2).

    python3 tools/pth_to_safetensors.py resnet18-f37072fd.pth resnet18.safetensors

Needs Python 3 and torch (not needed by MILA-cpp itself). Names are kept exactly as
state_dict() gives them; floating tensors are written as F32, integer ones as I64. A
checkpoint that wraps its state dict ({"state_dict": ...} or {"model": ...}) is unwrapped,
and a "module." prefix (from DataParallel) is removed.
"""
import json
import struct
import sys

import torch


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    src, dst = argv[1], argv[2]
    state = torch.load(src, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        if not torch.is_tensor(t):
            continue
        name = name[len("module."):] if name.startswith("module.") else name
        if t.is_floating_point():
            t, dtype = t.detach().to(torch.float32).contiguous(), "F32"
        else:
            t, dtype = t.detach().to(torch.int64).contiguous(), "I64"
        data = t.numpy().tobytes()  # little-endian on x86-64 and ARM
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"source": src}
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    print(f"{dst}: {len(blobs)} tensors, {offset / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv)
