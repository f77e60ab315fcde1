#!/usr/bin/env python3
"""The Python eager counterpart of bench/pipeline.ts --model: the open_clip model built from a model
folder's config (random weights: throughput only), a torch DataLoader over the same JPEGs with PIL
preprocessing (BiomedCLIP's eval transform), LP feature extraction and fine-tuning (visual + linear
head, AdamW, masked BCE), bf16 autocast when asked. Prints one JSON line.

    python bench/pipeline_torch.py --model models/biomedclip --list jpegs.txt --device cuda --bf16
"""

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent


def export_tool():
    spec = importlib.util.spec_from_file_location("export_biomedclip", ROOT / "tools" / "export_biomedclip.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_model(model_dir: Path):
    ex = export_tool()
    meta = json.loads((model_dir / "model.json").read_text())
    p = dict(ex.PRESETS[meta["preset"]])
    p["vocab_size"] = meta["vocabSize"]
    model, _ = ex.build_open_clip(p, model_dir / "hf")
    return model, meta


class Jpegs(torch.utils.data.Dataset):
    def __init__(self, paths, size, mean, std, length):
        from torchvision import transforms as T

        self.paths = paths
        self.length = length
        self.tf = T.Compose([
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size), T.ToTensor(),
            T.Normalize(mean, std),
        ])

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i % len(self.paths)]) as im:
            x = self.tf(im.convert("RGB"))
        return x, torch.randint(0, 2, (5,)).float()


def timed(loader, step, seconds, device, warm=3):
    """Warm-up steps, then steps until `seconds`; the time spent in next(loader) is the data wait."""
    it = iter(loader)
    images, wait, steps = 0, 0.0, 0
    t0 = None
    while True:
        t = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            break
        waited = time.perf_counter() - t
        if steps == warm:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        elif steps > warm:
            wait += waited
        step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        if steps >= warm:
            images += x.shape[0]
        steps += 1
        if t0 is not None and time.perf_counter() - t0 > seconds:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    s = time.perf_counter() - t0
    return {"imgPerSec": images / s, "waitFraction": wait / s, "steps": steps - warm, "seconds": s}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--list", type=Path, required=True, help="JPEG paths, one a line")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--feature-batch", type=int, default=256)
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    model, meta = build_model(args.model)
    visual = model.visual.to(device)
    paths = [line for line in args.list.read_text().splitlines() if line]
    size = meta["imageSize"]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    def loader(batch):
        # enough items for the budget at any speed; workers stop with the iterator
        ds = Jpegs(paths, size, meta["mean"], meta["std"], length=batch * 100_000)
        return torch.utils.data.DataLoader(
            ds, batch_size=batch, shuffle=False, num_workers=args.workers, pin_memory=device.type == "cuda",
            persistent_workers=False, prefetch_factor=4 if args.workers else None)

    visual.eval()

    @torch.no_grad()
    def feature_step(x, y):
        with autocast:
            visual(x).float().cpu()

    features = timed(loader(args.feature_batch), feature_step, args.seconds, device)

    visual.train()
    head = nn.Linear(meta["embedDim"], 5).to(device)
    opt = torch.optim.AdamW([{"params": visual.parameters(), "lr": 1e-5}, {"params": head.parameters(), "lr": 1e-3}])
    bce = nn.BCEWithLogitsLoss()

    def train_step(x, y):
        with autocast:
            logits = head(visual(x)).float()
        loss = bce(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(visual.parameters()) + list(head.parameters()), 1.0)
        opt.step()
        loss.item()  # the addon returns the loss each step: the same sync point

    train = timed(loader(args.train_batch), train_step, args.seconds, device)
    out = {"torch": torch.__version__, "device": str(device), "bf16": args.bf16, "workers": args.workers,
           "jpegs": len(paths), "features": features, "train": train,
           "note": "features: original images only (no contour paint); JPEGs decoded every step"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
