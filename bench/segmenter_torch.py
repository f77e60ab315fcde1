#!/usr/bin/env python3
"""The eager PyTorch counterpart of the addon's segmenter training step: the U-Net class of
tools/segmenter_export.py (an nn.Module, not TorchScript) with the weights of a segmenter export, the
same loss (seg_loss: BCE + soft Dice), AdamW, gradient clipping, bf16 autocast when asked, on the same
batch shape and the same synthetic region masks the GPU check feeds the addon. Prints one JSON line:
train images/s (median over --iters timed steps, after --warmup).

    python bench/segmenter_torch.py --model models/seg-tiny --batch 4 --device cpu [--bf16]
"""

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def export_tool():
    spec = importlib.util.spec_from_file_location("segmenter_export", ROOT / "tools" / "segmenter_export.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="segmenter folder (model.json, seg.pt)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    ex = export_tool()
    meta = json.loads((args.model / "model.json").read_text())
    net = ex.UNet(meta["base"], meta["depth"], meta["stem"])
    wrapped = ex.Exported(net)
    scripted = torch.jit.load(str(args.model / meta["files"]["model"]), map_location="cpu")
    missing, unexpected = wrapped.load_state_dict(scripted.state_dict(), strict=True)
    assert not missing and not unexpected
    net = net.to(dev).train()
    s, b = meta["imageSize"], args.batch
    # The same inputs as scripts/gpu-check-sections.mjs gives the addon: a sine image, left half right
    # lung, right half left lung.
    idx = torch.arange(b * 3 * s * s, dtype=torch.float32)
    x_host = (0.5 * torch.sin(0.37 * idx)).reshape(b, 3, s, s)
    col = torch.arange(s).view(1, 1, s).expand(b, s, s)
    targets = torch.zeros(b, 3, s, s)
    targets[:, 0] = (col < s / 2).float()
    targets[:, 1] = (col >= s / 2).float()
    targets = targets.to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4,
                            fused=dev.type == "cuda")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = net.segment(x_host.to(dev, non_blocking=True))
        loss = ex.seg_loss(logits, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss.item()  # the addon returns the loss of each step: the same sync point

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.iters):
        sync()
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"preset": meta["preset"], "device": str(dev), "bf16": args.bf16, "batch": b,
                      "trainImgPerSec": b / med, "seconds": times, "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
