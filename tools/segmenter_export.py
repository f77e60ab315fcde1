#!/usr/bin/env python3
"""Export a lung/heart segmenter (U-Net, random init) to TorchScript for the cxrmask addon.

    python tools/segmenter_export.py --random-init unet-tiny --out models/seg-tiny --seed 0
    python tools/segmenter_export.py --random-init unet --out models/seg --seed 0

Output: seg.pt (TorchScript; `segment(x)` maps normalised images [n,3,S,S] to per-pixel logits
[n,3,S,S] for right lung, left lung, heart; `forward` is the same), model.json (kind 'segmenter',
preset, imageSize, mean/std: the classifier's preprocessing) and reference.json + reference_*.bin
(Python outputs on fixed inputs, for the addon's parity tests). `seg_loss` is the training loss the
addon implements (native/segmenter.cc); the parity tests import it from here. The folder is written
all or nothing (export_staging.py): a failed export leaves an existing --out as it was.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # export_staging.py beside this file
from export_staging import staged_export  # noqa: E402

# Same preprocessing as the classifier (tools/export_biomedclip.py OPENAI_MEAN/STD).
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
STRUCTURES = ["rightLung", "leftLung", "heart"]

PRESETS = {
    # Real use: 4 levels, 32..256 channels at full resolution of the 224 grid (~7.8M params).
    "unet": dict(image_size=224, base=32, depth=4, stem=1),
    # Tests/demo: works on a 4× average-pooled grid (56²) with 8..32 channels (~0.12M params); the
    # logits are upsampled back to S×S, so the interface is the same.
    "unet-tiny": dict(image_size=224, base=8, depth=3, stem=4),
}


def log(*a):
    print("[segmenter_export]", *a, file=sys.stderr)


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(4, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(4, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(x)))


class UNet(nn.Module):
    """GroupNorm U-Net (no batch statistics: train and eval compute the same function). Two coordinate
    channels (x, y in [-1, 1]) join the image at the input: right and left lung look alike locally, and
    without them a small receptive field confuses the two."""

    def __init__(self, base: int, depth: int, stem: int, classes: int = 3):
        super().__init__()
        self.stem = stem
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c = 3 + 2
        for w in widths:
            self.down.append(ConvBlock(c, w))
            c = w
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.fuse.append(ConvBlock(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, classes, 1)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        size = [x.shape[2], x.shape[3]]
        h = x
        if self.stem > 1:
            h = F.avg_pool2d(h, self.stem)
        n, hh, ww = h.shape[0], h.shape[2], h.shape[3]
        xs = torch.linspace(-1.0, 1.0, ww, dtype=h.dtype, device=h.device).view(1, 1, 1, ww).expand(n, 1, hh, ww)
        ys = torch.linspace(-1.0, 1.0, hh, dtype=h.dtype, device=h.device).view(1, 1, hh, 1).expand(n, 1, hh, ww)
        h = torch.cat([h, xs, ys], 1)
        skips: list[torch.Tensor] = []
        n_down = len(self.down)
        for i, block in enumerate(self.down):
            h = block(h)
            if i < n_down - 1:
                skips.append(h)
                h = F.max_pool2d(h, 2)
        for j, (up, fuse) in enumerate(zip(self.up, self.fuse)):
            h = up(h)
            h = fuse(torch.cat([h, skips[n_down - 2 - j]], 1))
        logits = self.head(h)
        if self.stem > 1:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segment(x)


class Exported(nn.Module):
    def __init__(self, net: UNet):
        super().__init__()
        self.net = net

    @torch.jit.export
    def segment(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.segment(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.segment(x)


def seg_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits (mean over pixels) + soft Dice loss (1 - mean over the 3 structures of the Dice
    computed over the whole batch, smoothing 1). The addon's Segmenter::TrainStep is the same."""
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    p = torch.sigmoid(logits)
    inter = (p * targets).sum(dim=(0, 2, 3))
    denom = p.sum(dim=(0, 2, 3)) + targets.sum(dim=(0, 2, 3))
    dice = (2 * inter + 1) / (denom + 1)
    return bce + (1 - dice.mean())


def reference_targets(n: int, s: int) -> torch.Tensor:
    """Fixed region masks for the parity inputs: two ellipses (lungs) and a disc (heart), per image
    shifted a little. Returns float [n,3,s,s] (the bits the addon reads from uint8 region masks)."""
    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32),
                            indexing="ij")
    out = torch.zeros(n, 3, s, s)
    for i in range(n):
        d = 3.0 * i
        out[i, 0] = (((xx - 0.3 * s - d) / (0.14 * s)) ** 2 + ((yy - 0.45 * s) / (0.3 * s)) ** 2 <= 1).float()
        out[i, 1] = (((xx - 0.7 * s + d) / (0.14 * s)) ** 2 + ((yy - 0.45 * s) / (0.3 * s)) ** 2 <= 1).float()
        out[i, 2] = (((xx - 0.55 * s) / (0.12 * s)) ** 2 + ((yy - 0.65 * s - d) / (0.1 * s)) ** 2 <= 1).float()
    return out


def write_blob(out: Path, name: str, arr: np.ndarray) -> dict:
    arr = np.ascontiguousarray(arr)
    (out / name).write_bytes(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    return {"file": name, "dtype": str(arr.dtype), "shape": list(arr.shape)}


def export(preset: str, out: Path, seed: int, ref_batch: int = 2) -> dict:
    """Exports into a temp folder that replaces `out` once the export passed its parity check."""
    with staged_export(out) as staging:
        meta = _export_into(preset, staging, seed, ref_batch)
    log(f"wrote {out}/seg.pt ({preset}, {meta['params'] / 1e6:.3f}M params), model.json, reference.json")
    return meta


def _export_into(preset: str, out: Path, seed: int, ref_batch: int) -> dict:
    p = PRESETS[preset]
    torch.manual_seed(seed)
    net = UNet(p["base"], p["depth"], p["stem"])
    scripted = torch.jit.script(Exported(net))
    scripted.save(str(out / "seg.pt"))
    params = sum(t.numel() for t in net.parameters())
    s = p["image_size"]
    loaded = torch.jit.load(str(out / "seg.pt"), map_location="cpu")
    assert all(q.requires_grad for q in loaded.parameters()), "segmenter parameters must require grad"
    g = torch.Generator().manual_seed(4321)
    images = torch.randn(ref_batch, 3, s, s, generator=g)
    targets = reference_targets(ref_batch, s)
    with torch.no_grad():
        logits = loaded.segment(images)
        direct = net.segment(images)
        loss = seg_loss(logits, targets)
    d = (logits - direct).abs().max().item()
    if d > 1e-5:
        raise RuntimeError(f"TorchScript export differs from the eager model (max |diff| {d})")
    bits = (targets[:, 0] + 2 * targets[:, 1] + 4 * targets[:, 2]).to(torch.uint8)
    ref = {
        "images": write_blob(out, "reference_images.bin", images.numpy().astype(np.float32)),
        "logits": write_blob(out, "reference_logits.bin", logits.numpy().astype(np.float32)),
        "regionBits": write_blob(out, "reference_region_bits.bin", bits.numpy()),
        "loss": float(loss.item()),
    }
    (out / "reference.json").write_text(json.dumps(ref))
    meta = {
        "kind": "segmenter", "preset": preset, "source": "random-init", "seed": seed, "imageSize": s,
        "structures": STRUCTURES, "mean": MEAN, "std": STD, "params": params,
        "base": p["base"], "depth": p["depth"], "stem": p["stem"],
        "torchVersion": torch.__version__.split("+")[0],
        "files": {"model": "seg.pt", "reference": "reference.json"},
    }
    (out / "model.json").write_text(json.dumps(meta, indent=1))
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--random-init", choices=sorted(PRESETS), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ref-batch", type=int, default=2)
    args = ap.parse_args(argv)
    export(args.random_init, args.out, args.seed, args.ref_batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
