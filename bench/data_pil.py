"""PIL + numpy doing what bench/data.ts does with sharp: JPEG → 224 gray (bicubic shortest side,
centre crop, as torchvision) → original and masked (landmark contours, Eq. 1) normalised CHW float32.

    python bench/data_pil.py DIR N      (DIR holds img{k}.jpg and landmarks.json; prints JSON)
"""
import json
import os
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32).reshape(3, 1, 1)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32).reshape(3, 1, 1)
REGIONS = [(0, 44, 0), (44, 94, 1), (94, 120, 2)]  # RL, LL, H
COLORS = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1]], np.float32)
ALPHA, THICK, S = 1.0, 2, 224


def erode(m):
    p = np.pad(m, 1, mode="edge")
    return m & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def one(path, lm):
    img = Image.open(path)
    img.draft("L", img.size)  # no DCT scaling (draft only picks a scale when asked to shrink)
    img = img.convert("L")
    w, h = img.size
    if w <= h:
        rw, rh = S, int(S * h / w)
    else:
        rw, rh = int(S * w / h), S
    img = img.resize((rw, rh), Image.BICUBIC)
    top, left = int(round((rh - S) / 2.0)), int(round((rw - S) / 2.0))
    img = img.crop((left, top, left + S, top + S))
    x = np.asarray(img, np.float32) / 255.0
    orig = (np.broadcast_to(x, (3, S, S)) - MEAN) / STD
    # contours on the 224 grid from landmarks mapped through the same resize/crop
    pts = np.asarray(lm, np.float64).reshape(-1, 2)
    pts = np.stack([(pts[:, 0] + 0.5) * rw / w - 0.5 - left, (pts[:, 1] + 0.5) * rh / h - 0.5 - top], 1)
    add = np.zeros((3, S, S), np.float32)
    for a, b, c in REGIONS:
        canvas = Image.new("L", (S, S), 0)
        ImageDraw.Draw(canvas).polygon([tuple(p) for p in pts[a:b]], fill=1)
        m = np.asarray(canvas, bool)
        e = m
        for _ in range(THICK):
            e = erode(e)
        band = m & ~e
        add += band[None] * (ALPHA * COLORS[c])[:, None, None]
    masked = (np.minimum(1.0, x[None] + add) - MEAN) / STD
    return orig.astype(np.float32), masked.astype(np.float32)


def main():
    d, n = sys.argv[1], int(sys.argv[2])
    lms = json.load(open(os.path.join(d, "landmarks.json")))
    paths = [os.path.join(d, f"img{k}.jpg") for k in range(n)]
    one(paths[0], lms[0])  # warm-up
    t0 = time.perf_counter()
    for k in range(n):
        o, m = one(paths[k], lms[k])
    dt = time.perf_counter() - t0
    import PIL

    print(json.dumps({"imagesPerSecond": n / dt, "pillow": PIL.__version__, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
