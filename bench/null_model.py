#!/usr/bin/env python3
"""Export a model folder whose towers do no real work, for timing the data path (bench/pipeline.ts).

    python bench/null_model.py --out bench/out/null-model [--embed-dim 64 --image-size 224]

Same surface as tools/export_biomedclip.py (clip.pt with encode_image / encode_text / visual /
logit_scale, model.json), so ClipModel and Classifier load it unchanged; encode_image returns a slice
of its input, so what is timed is the cache read, the hand-over to the addon and the pixel work.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
# The exporter's wrapper gives the null towers the exact surface of a real export.
from export_biomedclip import OPENAI_MEAN, OPENAI_STD, ClipExport  # noqa: E402

LOGIT_SCALE = 2.6592600345611572  # ln(1/0.07), CLIP's initial value


class NullVisual(nn.Module):
    embed_dim: int

    def __init__(self, embed_dim: int):
        super().__init__()
        self.embed_dim = embed_dim
        # one trainable scalar: Classifier fine-tunes `visual` and needs a parameter to hand AdamW
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, : self.embed_dim] * self.scale


class NullText(nn.Module):
    embed_dim: int

    def __init__(self, embed_dim: int):
        super().__init__()
        self.embed_dim = embed_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # new_zeros keeps the caller's device: the export carries no device constant
        return ids.new_zeros((ids.size(0), self.embed_dim), dtype=torch.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--embed-dim", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--context-length", type=int, default=64)
    args = ap.parse_args(argv)
    if args.embed_dim > args.image_size:
        ap.error("--embed-dim must not exceed --image-size (encode_image slices one image row)")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    d = args.embed_dim
    m = torch.jit.script(ClipExport(NullVisual(d), NullText(d), torch.tensor(LOGIT_SCALE)))
    m.eval()
    m.save(str(out / "clip.pt"))
    meta = {
        "preset": "null", "source": "bench/null_model.py", "embedDim": args.embed_dim,
        "imageSize": args.image_size, "contextLength": args.context_length, "padId": 0,
        "mean": OPENAI_MEAN, "std": OPENAI_STD, "logitScale": LOGIT_SCALE,
        "torchVersion": torch.__version__.split("+")[0], "files": {"model": "clip.pt"},
    }
    (out / "model.json").write_text(json.dumps(meta, indent=1))
    print(f"[null-model] wrote {out}/clip.pt, model.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
