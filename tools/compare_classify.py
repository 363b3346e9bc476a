#!/usr/bin/env python3
"""Check examples/classify against torchvision on the same image and weights: the logits of
`classify --raw` next to torchvision's model on torchvision's evaluation transform.

    /usr/bin/python3 tools/compare_classify.py --arch resnet18 --image cat.jpg [--pth resnet18.pth]

Without --pth the weights are torchvision's architecture at a random initialization (seed
0, batch-norm statistics randomized too, so that eval-mode batch norm is exercised), which
needs no download. Prints the largest logit difference and both top-5 lists; exits 1 when
they disagree (top-5 indices differ or max |diff| > --atol). Needs torch, torchvision and
Pillow (Debian: python3-torch python3-torchvision python3-pil); MILA-cpp does not.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

HERE = os.path.dirname(os.path.abspath(__file__))


def read_safetensors_f32(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        start, end = header[name]["data_offsets"]
        f.seek(8 + n + start)
        return np.frombuffer(f.read(end - start), dtype="<f4").reshape(header[name]["shape"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=["resnet18", "resnet34", "resnet50", "resnet101"])
    ap.add_argument("--image", required=True)
    ap.add_argument("--pth", help="a torchvision state dict; default: random weights (seed 0)")
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "build", "classify"))
    ap.add_argument("--atol", type=float, default=1e-3)
    args = ap.parse_args()

    model = getattr(torchvision.models, args.arch)()
    with tempfile.TemporaryDirectory() as tmp:
        pth = args.pth
        if pth is None:
            torch.manual_seed(0)
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.data.uniform_(0.5, 1.5)
                    m.bias.data.uniform_(-0.2, 0.2)
            pth = os.path.join(tmp, "weights.pth")
            torch.save(model.state_dict(), pth)
        else:
            model.load_state_dict(torch.load(pth, map_location="cpu"))
        model.eval()
        weights = os.path.join(tmp, "weights.safetensors")
        subprocess.run([sys.executable, os.path.join(HERE, "pth_to_safetensors.py"), pth, weights], check=True)
        raw = os.path.join(tmp, "logits.safetensors")
        run = subprocess.run([args.binary, "--arch", args.arch, "--weights", weights, "--image", args.image, "--raw", raw],
                             check=True, capture_output=True, text=True)
        ours = read_safetensors_f32(raw, "logits")[0].astype(np.float64)

    transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    x = transform(Image.open(args.image).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        theirs = model(x)[0].double().numpy()
    diff = np.abs(ours - theirs)
    top_ours, top_theirs = list(np.argsort(-ours)[:5]), list(np.argsort(-theirs)[:5])
    print(run.stdout.rstrip())
    print(f"\ntorchvision {torchvision.__version__}, torch {torch.__version__}: {args.arch} on {args.image}")
    print(f"  logits: max |ours - torchvision| = {diff.max():.3g} (logit range {theirs.min():.3g} .. {theirs.max():.3g})")
    print(f"  top-5 ours        {top_ours}\n  top-5 torchvision {top_theirs}")
    ok = top_ours == top_theirs and diff.max() <= args.atol
    print("  agree" if ok else "  DISAGREE")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
