#!/usr/bin/env python3
"""MILA in PyTorch, written from ../shared/SPEC.md (sections 1-4), not from the C++ code.

It is the other side of SPEC's contract: a checkpoint written by MILA-cpp loads strictly into
`Mila` (same module names and shapes) and gives the same outputs to float32 rounding. The C++
project never needs it; tools/gen_mila_reference.py uses it to write the reference data of
tests/test_mila_reference.cpp, and tools/bench_mila_torch.py times it.

    Config                 SPEC 4's fields (plus the C++ extras: attention, weighting, alpha, beta, mimic)
    resnet(depth, width)   SPEC 3: torchvision's ResNet layout, dilated (output stride 8), no fc
    Mila                   SPEC 4.1 modules; forward_clip (4.3) with ila (4.2)
    training_losses        SPEC 4.4: task losses, L1 mimic, discriminator behind gradient reversal
    read_safetensors / write_safetensors / load_checkpoint / save_checkpoint   SPEC 2

Command line (Debian's /usr/bin/python3 has torch 1.13 and torchvision 0.14):

    python3 tools/mila_torch.py check CKPT   # strict load of a MILA-cpp checkpoint, prints a summary
"""
import dataclasses
import json
import math
import struct
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

# ----------------------------------------------------------------------------- safetensors (SPEC 2)

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64, "F64": np.float64}


def read_safetensors(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """name -> tensor (F32, F16 and BF16 as float32; I64 as int64), and the __metadata__."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        raw, dt, shape = data[begin:end], e["dtype"], tuple(e["shape"])
        if dt == "BF16":  # the upper half of a float32
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dt in _DTYPES:
            a = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dt]).newbyteorder("<"))
            a = a.astype(np.int64 if dt == "I64" else np.float32)
        else:
            raise ValueError(f"read_safetensors: {path}: tensor '{name}' has unsupported dtype {dt}")
        if a.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"read_safetensors: {path}: tensor '{name}' has {a.size} values for shape {list(shape)}")
        out[name] = torch.from_numpy(a.reshape(shape).copy())
    return out, meta


def write_safetensors(path: str, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None):
    """Floating tensors as F32, integer ones as I64, C order, little-endian."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu()
        t, dt = (t.to(torch.float32), "F32") if t.is_floating_point() else (t.to(torch.int64), "I64")
        data = t.contiguous().numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()  # little-endian
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# ----------------------------------------------------------------------------- configuration (SPEC 4)

@dataclasses.dataclass
class Config:
    slow_depth: int = 101
    fast_depth: int = 18
    width: int = 64
    C: int = 256
    D: int = 64
    L: int = 5
    K: int = 5
    tasks: List[Tuple[str, int]] = dataclasses.field(default_factory=lambda: [("seg", 13), ("depth", 1), ("normal", 3)])
    task_specific: bool = True
    multi_frame: bool = True
    # Not in SPEC's list, written by MILA-cpp too: attention = false is the baseline whose slots
    # copy the source features (no ILA); the training fields of SPEC 4.4.
    attention: bool = True
    weighting: str = "equal"
    alpha: float = 1.0
    beta: float = 1.0
    mimic: bool = True

    @staticmethod
    def from_json(text: str) -> "Config":
        j = json.loads(text)
        known = {f.name for f in dataclasses.fields(Config)}
        for k in j:
            if k not in known:
                raise ValueError(f"mila.config: unknown field '{k}'")
        if "tasks" in j:
            j["tasks"] = [(str(n), int(c)) for n, c in j["tasks"]]
        return Config(**j)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["tasks"] = [[n, c] for n, c in self.tasks]
        return json.dumps(d)


# ----------------------------------------------------------------------------- backbones (SPEC 3)

class DilatedBasicBlock(BasicBlock):
    """torchvision's BasicBlock with both 3x3 convs dilated (SPEC 3 defines it; torchvision refuses)."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__(inplanes, planes, stride, downsample)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=dilation, dilation=dilation, bias=False)


class ResNetFeatures(nn.Module):
    """torchvision's ResNet (same names) with width w, dilated as replace_stride_with_dilation=
    [False, True, True], without avgpool/fc: forward gives layer4's map at 1/8 of the input."""

    LAYERS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}

    def __init__(self, depth: int, width: int = 64, dilated: bool = True):
        super().__init__()
        if depth not in self.LAYERS:
            raise ValueError(f"ResNetFeatures: depth {depth} is not 18, 34, 50 or 101")
        block = DilatedBasicBlock if depth < 50 else Bottleneck
        self.inplanes, self.dilation = width, 1
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        n = self.LAYERS[depth]
        self.layer1 = self._make_layer(block, width, n[0], 1, False)
        self.layer2 = self._make_layer(block, 2 * width, n[1], 2, False)
        self.layer3 = self._make_layer(block, 4 * width, n[2], 2, dilated)
        self.layer4 = self._make_layer(block, 8 * width, n[3], 2, dilated)
        self.out_channels = 8 * width * block.expansion

    def _make_layer(self, block, planes, blocks, stride, dilate):
        # As torchvision: a dilated layer trades its stride for dilation; its first block keeps
        # the previous dilation; a downsample branch wherever stride or channels change.
        previous = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, dilation=previous)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, dilation=self.dilation))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


# ----------------------------------------------------------------------------- attention (SPEC 4.1, 4.2)

class SE(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean_hw(x))))), the gate broadcast over H, W."""

    def __init__(self, C: int):
        super().__init__()
        self.fc1 = nn.Linear(C, C // 16)
        self.fc2 = nn.Linear(C // 16, C)

    def forward(self, x):
        g = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * g[:, :, None, None]


def ila(a: torch.Tensor, b: torch.Tensor, v: torch.Tensor, L: int) -> torch.Tensor:
    """SPEC 4.2: out[c, p] = sum_o softmax_o(a[:, p] . b[:, p + o]) v[c, p + o], offsets in an
    L x L window (those falling outside the map left out), or every pixel when L = 0."""
    B, D, H, W = a.shape
    C = v.shape[1]
    if L == 0:
        logits = torch.einsum("bdp,bdq->bpq", a.reshape(B, D, H * W), b.reshape(B, D, H * W))
        w = torch.softmax(logits, dim=2)
        return torch.einsum("bpq,bcq->bcp", w, v.reshape(B, C, H * W)).reshape(B, C, H, W)
    r = (L - 1) // 2
    n = L * L
    bu = F.unfold(b, L, padding=r).reshape(B, D, n, H * W)        # b[d, p + o], 0 outside
    vu = F.unfold(v, L, padding=r).reshape(B, C, n, H * W)
    inside = F.unfold(torch.ones(1, 1, H, W, dtype=a.dtype, device=a.device), L, padding=r) > 0  # [1, n, HW]
    logits = (a.reshape(B, D, 1, H * W) * bu).sum(1)                # [B, n, HW]
    logits = logits.masked_fill(~inside, float("-inf"))
    w = torch.softmax(logits, dim=1)
    return (w[:, None] * vu).sum(2).reshape(B, C, H, W)


class ILA(nn.Module):
    """The task's key projection h (3x3 conv C -> D, with bias); values are the source itself."""

    def __init__(self, C: int, D: int, L: int):
        super().__init__()
        self.h = nn.Conv2d(C, D, 3, 1, 1, bias=True)
        self.L = L


class Attention(nn.Module):
    """SE + ILA: `decoders.<task>.{se,ila}` or `shared.{se,ila}`."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.se = SE(cfg.C)
        self.ila = ILA(cfg.C, cfg.D, cfg.L)


class TaskDecoder(nn.Module):
    def __init__(self, cfg: Config, out_channels: int, own_attention: bool):
        super().__init__()
        if own_attention:
            self.se = SE(cfg.C)
            self.ila = ILA(cfg.C, cfg.D, cfg.L)
        S = 3 if cfg.multi_frame else 2
        self.head = nn.Sequential(
            nn.Conv2d(S * cfg.C, 512, 3, 1, 1, bias=False), nn.BatchNorm2d(512), nn.ReLU(inplace=True),
            nn.Conv2d(512, 256, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
            nn.Conv2d(256, out_channels, 1, bias=True))


class GradReverse(torch.autograd.Function):
    """Identity forward; the gradient times -beta backward."""

    @staticmethod
    def forward(ctx, x, beta):
        ctx.beta = beta
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.beta * g, None


# ----------------------------------------------------------------------------- the model (SPEC 4.1, 4.3)

def neck(cin: int, C: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, C, 1, bias=False), nn.BatchNorm2d(C), nn.ReLU(inplace=True))


class Mila(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.slow = ResNetFeatures(cfg.slow_depth, cfg.width)
        self.fast = ResNetFeatures(cfg.fast_depth, cfg.width)
        self.slow_neck = neck(self.slow.out_channels, cfg.C)
        self.fast_neck = neck(self.fast.out_channels, cfg.C)
        self.decoders = nn.ModuleDict({t: TaskDecoder(cfg, c, cfg.task_specific) for t, c in cfg.tasks})
        if not cfg.task_specific:
            self.shared = Attention(cfg)
        C = cfg.C
        self.disc = nn.Sequential(nn.Conv2d(C, C // 2, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(C // 2, C // 4, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(C // 4, 1, 3, 1, 1))
        if cfg.weighting == "uncertainty":
            self.uncertainty = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t, _ in cfg.tasks})

    def is_keyframe(self, t: int, t0: int) -> bool:
        return (t - t0) % self.cfg.K == 0  # Python's % is non-negative for K > 0

    def encode(self, frames, keyframe: bool):
        return self.slow_neck(self.slow(frames)) if keyframe else self.fast_neck(self.fast(frames))

    def discriminate(self, e):
        return self.disc(e).mean(dim=(1, 2, 3))  # one logit per image

    def block(self, task: str):
        return self.decoders[task] if self.cfg.task_specific else self.shared

    def forward_clip(self, frames, t0: int, heads_on_last_only: bool = False):
        """frames [T, B, 3, H, W] -> (outputs: per frame a dict task -> [B, ch, H, W] (empty for
        frames without heads), encodings: e_t per frame)."""
        T, H, W = frames.shape[0], frames.shape[3], frames.shape[4]
        key = [self.is_keyframe(t, t0) for t in range(T)]
        enc = [self.encode(frames[t], key[t]) for t in range(T)]  # in time order, one call per frame
        outputs = [dict() for _ in range(T)]
        cache = {}  # (block id, t) -> (s_t, h(s_t))

        def features(task, t):
            blk = self.block(task)
            k = (id(blk), t)
            if k not in cache:
                s = blk.se(enc[t])
                cache[k] = (s, blk.ila.h(s) if self.cfg.attention else None)
            return cache[k]

        def attend(task, t, src):
            s, keys = features(task, t)
            s_src, keys_src = features(task, src)
            if not self.cfg.attention:
                return s_src
            return ila(keys, keys_src, s_src, self.cfg.L)

        for task, _ in self.cfg.tasks:
            for t in range(T):
                if heads_on_last_only and t != T - 1:
                    continue
                s, _ = features(task, t)
                k = max([j for j in range(t) if key[j]], default=None)
                slots = [s, s if key[t] or k is None else attend(task, t, k)]
                if self.cfg.multi_frame:
                    slots.append(attend(task, t, t - 1) if t > 0 else s)
                y = self.decoders[task].head(torch.cat(slots, dim=1))
                y = F.interpolate(y, size=(H, W), mode="bilinear", align_corners=False)
                if task == "normal":
                    y = F.normalize(y, p=2, dim=1, eps=1e-12)
                outputs[t][task] = y
        return outputs, enc


# ----------------------------------------------------------------------------- training (SPEC 4.4)

def task_loss(task: str, pred, batch: dict):
    """Averaged over the valid pixels of the whole batch; 0 (still a graph node) when none."""
    if task == "seg":
        gt = batch["seg"]
        if not bool((gt != 255).any()):
            return pred.sum() * 0
        return F.cross_entropy(pred, gt, ignore_index=255)
    if task == "depth":
        gt = batch["depth"]
        valid = gt > 0
        if not bool(valid.any()):
            return pred.sum() * 0
        return (pred - gt).abs()[valid].mean()
    if task == "normal":
        gt = batch["normal"]
        valid = (gt != 0).any(dim=1)
        if not bool(valid.any()):
            return pred.sum() * 0
        dot = (F.normalize(pred, dim=1, eps=1e-12) * F.normalize(gt, dim=1, eps=1e-12)).sum(1)
        return 1 - dot[valid].mean()
    raise ValueError(f"task_loss: no loss for task '{task}'")


def training_losses(model: Mila, batch: dict, dwa_weights: Optional[Dict[str, float]] = None):
    """batch: frames [T, B, 3, H, W], t0, seg int64 [B, H, W], depth [B, 1, H, W], normal
    [B, 3, H, W]. Returns dict: task -> loss, 'l1', 'disc' (when mimic), 'total'."""
    cfg = model.cfg
    frames, t0 = batch["frames"], batch.get("t0", 0)
    outputs, enc = model.forward_clip(frames, t0, heads_on_last_only=True)
    a = frames.shape[0] - 1
    terms, total = {}, 0
    for task, _ in cfg.tasks:
        lt = task_loss(task, outputs[a][task], batch)
        terms[task] = lt
        if cfg.weighting == "uncertainty":
            s = model.uncertainty[task]
            total = total + torch.exp(-s) * lt + s
        elif cfg.weighting == "dwa":
            total = total + (dwa_weights or {}).get(task, 1.0) * lt
        else:
            total = total + lt
    if cfg.mimic:
        if model.is_keyframe(a, t0):  # e_a is Slow's: S = e_a detached, one extra Fast pass
            S = enc[a].detach()
            Fa = model.fast_neck(model.fast(frames[a]))
        else:                         # e_a is Fast's: one extra Slow pass without gradient
            with torch.no_grad():
                S = model.slow_neck(model.slow(frames[a]))
            Fa = enc[a]
        l1 = (S - Fa).abs().mean()
        ds = model.discriminate(S)
        df = model.discriminate(GradReverse.apply(Fa, cfg.beta))
        ld = (F.binary_cross_entropy_with_logits(ds, torch.ones_like(ds)) +
              F.binary_cross_entropy_with_logits(df, torch.zeros_like(df)))
        terms["l1"], terms["disc"] = l1, ld
        total = total + cfg.alpha * l1 + ld
    terms["total"] = total
    return terms


# ----------------------------------------------------------------------------- checkpoints (SPEC 2)

def load_checkpoint(path: str) -> Mila:
    """A model rebuilt from the file's "mila.config", every tensor loaded strictly: names,
    shapes and dtypes (floating vs integer) must all match."""
    tensors, meta = read_safetensors(path)
    if "mila.config" not in meta:
        raise ValueError(f"load_checkpoint: {path} has no 'mila.config' metadata")
    model = Mila(Config.from_json(meta["mila.config"]))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    bad = sorted(f"{n} {list(tensors[n].shape)} (expected {list(expected[n].shape)}, {expected[n].dtype})"
                 for n in set(expected) & set(tensors)
                 if tensors[n].shape != expected[n].shape or tensors[n].is_floating_point() != expected[n].is_floating_point())
    if missing or unexpected or bad:
        raise ValueError(f"load_checkpoint: {path}: missing {missing}, unexpected {unexpected}, mis-shaped {bad}")
    model.load_state_dict(tensors, strict=True)
    return model


def save_checkpoint(path: str, model: Mila, metadata: Optional[Dict[str, str]] = None):
    meta = {"mila.config": model.cfg.to_json()}
    meta.update(metadata or {})
    write_safetensors(path, model.state_dict(), meta)


def main(argv):
    if len(argv) == 3 and argv[1] == "check":
        model = load_checkpoint(argv[2])
        n = len(model.state_dict())
        print(f"{argv[2]}: {n} tensors loaded strictly; config {model.cfg.to_json()}")
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
