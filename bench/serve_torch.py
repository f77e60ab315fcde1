#!/usr/bin/env python3
"""Python side of bench/serve.ts: what a PyTorch user would run to serve inference-time masking from
a JPEG alone, on the same TorchScript files — PIL decode + resize/crop (as torchvision), the
segmenter's `segment(x)` → thresholded region masks → contour bands (Eq. 1 paint, as bench/data_pil.py)
→ the CLIP image tower on [original, masked] → per-finding zero-shot probabilities with the text
features bench/serve.ts computed → the overlay PNG. One image at a time, an eager Python loop.

    python bench/serve_torch.py --clip clip.pt --seg seg.pt --bank bank.json --threads T IMG...
--eager runs the models as a PyTorch user builds them (the open_clip image tower and the U-Net
nn.Module, the files' weights copied in) instead of the TorchScript files; --bf16 under bf16 autocast.
Prints one JSON object: per-image seconds, images/s, versions.
"""
import argparse
import io
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data_pil import ALPHA, COLORS, MEAN, STD, THICK, erode  # noqa: E402  (same Eq. 1 paint)


def load_plane(path, size):
    img = Image.open(path)
    img.draft("L", img.size)
    img = img.convert("L")
    w, h = img.size
    rw, rh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    img = img.resize((rw, rh), Image.BICUBIC)
    top, left = int(round((rh - size) / 2.0)), int(round((rw - size) / 2.0))
    return np.asarray(img.crop((left, top, left + size, top + size)), np.float32) / 255.0


def eager_models(clip_path, seg_path, clip, seg, dev):
    """The open_clip image tower and the U-Net nn.Module with the exported files' weights."""
    import importlib.util
    from pathlib import Path

    from native_torch import eager_visual

    visual = eager_visual(clip_path, dev, clip.visual).eval()
    tool = Path(__file__).resolve().parent.parent / "tools" / "segmenter_export.py"
    spec = importlib.util.spec_from_file_location("segmenter_export", tool)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    meta = json.loads((Path(seg_path).parent / "model.json").read_text())
    net = ex.UNet(meta["base"], meta["depth"], meta["stem"])
    ex.Exported(net).load_state_dict({k: v.cpu() for k, v in seg.state_dict().items()}, strict=True)
    net = net.to(dev).eval()
    return visual, net.segment


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", required=True)
    ap.add_argument("--seg", required=True)
    ap.add_argument("--bank", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--eager", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    clip = torch.jit.load(a.clip, map_location=dev).eval()
    seg = torch.jit.load(a.seg, map_location=dev).eval()
    encode, segment = clip.encode_image, seg.segment
    if a.eager:
        encode, segment = eager_models(a.clip, a.seg, clip, seg, dev)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16)
    bank = json.load(open(a.bank))
    size = bank["size"]
    pos = torch.tensor(bank["positive"], device=dev).reshape(5, -1)
    neg = torch.tensor(bank["negative"], device=dev).reshape(5, -1)
    scale = bank["logitScale"]

    def one(path):
        x = load_plane(path, size)
        orig = (np.broadcast_to(x, (3, size, size)) - MEAN) / STD
        with torch.inference_mode():
            with autocast:
                logits = segment(torch.from_numpy(orig.astype(np.float32))[None].to(dev))[0].float()
            masks = (torch.sigmoid(logits) > 0.5).cpu().numpy()
        add = np.zeros((3, size, size), np.float32)
        for c in range(3):
            m = masks[c]
            e = m
            for _ in range(THICK):
                e = erode(e)
            add += (m & ~e)[None] * (ALPHA * COLORS[c])[:, None, None]
        painted = np.minimum(1.0, x[None] + add)
        masked = (painted - MEAN) / STD
        batch = torch.from_numpy(np.stack([orig, masked]).astype(np.float32)).to(dev)
        with torch.inference_mode():
            with autocast:
                f = encode(batch)
            f = torch.nn.functional.normalize(f.float(), dim=-1)
        probs = torch.sigmoid(scale * (f @ pos.T - f @ neg.T)).cpu().numpy()
        buf = io.BytesIO()
        Image.fromarray((painted.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(buf, "PNG")
        return probs, buf.getvalue()

    for p in (a.images * 4)[:4]:  # warm-up, as bench/serve.ts (TorchScript profiles the first calls)
        one(p)
    seconds = []
    t0 = time.perf_counter()
    for _ in range(a.reps):
        for p in a.images:
            t = time.perf_counter()
            one(p)
            seconds.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    import PIL

    print(json.dumps({
        "seconds": seconds,
        "imagesPerSecond": len(seconds) / wall,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "pillow": PIL.__version__,
    }))


if __name__ == "__main__":
    main()
