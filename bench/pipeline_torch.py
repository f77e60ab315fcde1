#!/usr/bin/env python3
"""The Python eager counterpart of bench/pipeline.ts --model: the open_clip model built from a model
folder's config (random weights: throughput only), LP feature extraction and fine-tuning (visual +
linear head, AdamW, masked BCE), bf16 autocast when asked. Two inputs:
  --list: a torch DataLoader over the same JPEGs with PIL preprocessing (BiomedCLIP's eval transform);
  --cache: a DataLoader over the same uint8 record cache the addon reads (numpy memmap of the shards,
    pinned batches, non_blocking copies; records painted and normalised on the device, as the addon
    does). Features then take both variants per record (original and masked rows), as the addon's.
Prints one JSON line.

    python bench/pipeline_torch.py --model models/biomedclip --list jpegs.txt --device cuda --bf16
    python bench/pipeline_torch.py --model models/biomedclip --cache CACHE_DIR --paint T --device cuda --bf16
"""

import argparse
import importlib.util
import json
import os
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


class Records(torch.utils.data.Dataset):
    """Cache records (uint8 [2,S,S]: grey plane, mask plane) read from memory-mapped shards."""

    def __init__(self, cache_dir: Path, length):
        meta = json.loads((cache_dir / "cache.json").read_text())
        self.dir = cache_dir
        self.size = meta["size"]
        self.files = [sh["file"] for sh in meta["shards"]]
        self.entries = [json.loads(line) for line in (cache_dir / "entries.jsonl").read_text().splitlines()
                        if line.strip()]
        self.length = length
        self.maps = None

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        import numpy as np

        if self.maps is None:  # opened in each worker
            s = self.size
            self.maps = [np.memmap(self.dir / f, dtype=np.uint8, mode="r").reshape(-1, 2, s, s) for f in self.files]
        e = self.entries[i % len(self.entries)]
        rec = torch.from_numpy(np.array(self.maps[e["shard"]][e["slot"]]))
        return rec, torch.tensor(e["labels"], dtype=torch.float32)


def find_cache(path: Path) -> Path:
    """A keyed cache folder (holding cache.json), or the one such folder below `path`."""
    if (path / "cache.json").exists():
        return path
    found = sorted(p.parent for p in path.glob("*/cache.json"))
    if len(found) != 1:
        raise SystemExit(f"{path}: expected one cache (cache.json) below it, found {len(found)}")
    return found[0]


def records_to_images(rec, mean, std, table, original, masked):
    """[n,2,S,S] uint8 on the device -> normalised [rows,3,S,S] float: originals, then painted."""
    gray = rec[:, 0].float().div_(255).unsqueeze(1)
    parts = []
    if original:
        parts.append((gray - mean) / std)
    if masked:
        add = table[(rec[:, 1] & 7).long()].permute(0, 3, 1, 2)
        parts.append(((gray + add).clamp_max_(1.0) - mean) / std)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


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


PREFETCH = 4


def item_bytes(records: bool, size: int) -> int:
    """Bytes of one item a worker hands over: a uint8 record (gray + contour planes) or a float32 image."""
    return 2 * size * size if records else 3 * size * size * 4


def shm_workers(wanted: int, prefetch: int, batch_bytes: int) -> int:
    """Workers whose batches in flight fit half of /dev/shm: worker batches travel through it, and a
    container's default 64 MB would kill them mid-run (14 workers x 4 x 256 records is ~1.4 GB)."""
    if wanted == 0 or not os.path.isdir("/dev/shm"):
        return wanted
    st = os.statvfs("/dev/shm")
    free = st.f_bavail * st.f_frsize
    return max(0, min(wanted, free // (2 * prefetch * batch_bytes)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--list", type=Path, help="JPEG paths, one a line")
    src.add_argument("--cache", type=Path, help="the record cache the addon read (bench/pipeline.ts --dir)")
    ap.add_argument("--paint", help="the paint table: 24 comma-separated floats (paintTable in ts/masks/overlay.ts)")
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
    size = meta["imageSize"]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    if args.cache:
        cache_dir = find_cache(args.cache)
        cmeta = json.loads((cache_dir / "cache.json").read_text())
        if not args.paint:
            raise SystemExit("--cache needs --paint (the addon's paint table)")
        table = torch.tensor([float(v) for v in args.paint.split(",")], device=device).view(8, 3)
        mean = torch.tensor(cmeta["preprocess"]["mean"], device=device).view(1, 3, 1, 1)
        std = torch.tensor(cmeta["preprocess"]["std"], device=device).view(1, 3, 1, 1)
        n_items = len(Records(cache_dir, 0).entries)
    else:
        paths = [line for line in args.list.read_text().splitlines() if line]
        n_items = len(paths)

    used_workers = {}

    def loader(batch, name):
        # enough items for the budget at any speed; workers stop with the iterator
        if args.cache:
            ds = Records(cache_dir, length=batch * 100_000)
        else:
            ds = Jpegs(paths, size, meta["mean"], meta["std"], length=batch * 100_000)
        workers = shm_workers(args.workers, PREFETCH, batch * item_bytes(args.cache is not None, size))
        used_workers[name] = workers
        return torch.utils.data.DataLoader(
            ds, batch_size=batch, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
            persistent_workers=False, prefetch_factor=PREFETCH if workers else None)

    def images(x, original=True, masked=False):
        return records_to_images(x, mean, std, table, original, masked) if args.cache else x

    visual.eval()

    @torch.no_grad()
    def feature_step(x, y):
        with autocast:
            visual(images(x, True, bool(args.cache))).float().cpu()

    features = timed(loader(args.feature_batch, "features"), feature_step, args.seconds, device)
    if args.cache:  # two model rows per record
        features["rowsPerSec"] = 2 * features["imgPerSec"]

    visual.train()
    head = nn.Linear(meta["embedDim"], 5).to(device)
    # fused on CUDA, as the addon's AdamW is
    opt = torch.optim.AdamW([{"params": visual.parameters(), "lr": 1e-5}, {"params": head.parameters(), "lr": 1e-3}],
                            fused=device.type == "cuda")
    bce = nn.BCEWithLogitsLoss()

    def train_step(x, y):
        with autocast:
            logits = head(visual(images(x))).float()
        loss = bce(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(visual.parameters()) + list(head.parameters()), 1.0)
        opt.step()
        loss.item()  # the addon returns the loss each step: the same sync point

    train = timed(loader(args.train_batch, "train"), train_step, args.seconds, device)
    out = {"torch": torch.__version__, "device": str(device), "bf16": args.bf16, "workers": args.workers,
           "workersUsed": used_workers,
           "input": "cache" if args.cache else "jpegs", "items": n_items, "features": features, "train": train,
           "note": ("uint8 records from a numpy memmap, pinned, non_blocking; painted and normalised on the device; "
                    "features: original and masked rows per record" if args.cache else
                    "features: original images only (no contour paint); JPEGs decoded every step")}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
