#!/usr/bin/env python3
"""Python PyTorch side of bench/native.ts: the same batch, threads and work as the addon (image-encoder
forward; train step = encoder + Linear(D,5) head, BCE-with-logits, AdamW with two learning rates), in
fp32 and with bf16 autocast, for two image towers with the same weights:
  script: the TorchScript file the addon runs (a check of the binding);
  eager:  the open_clip model (timm ViT) built from the same preset, weights copied from that file —
          what a PyTorch user would run instead.

Default: times everything and prints one JSON object. --serve: reads `<forward|train> <fp32|bf16>
[script|eager]` lines on stdin and answers each with `{"seconds": t}` for one call, so bench/native.ts
can interleave addon and Python calls (fair on a shared, noisy machine)."""
import sys
import argparse
import json
import time

from pathlib import Path

import torch
import torch.nn.functional as F


def eager_visual(model_path: str, dev: torch.device, scripted_visual):
    """The open_clip image tower of the exported preset, with the exported weights."""
    model_dir = Path(model_path).parent
    meta = json.loads((model_dir / "model.json").read_text())
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    from export_biomedclip import PRESETS, build_open_clip

    p = dict(PRESETS[meta["preset"]])
    p.update(embed_dim=meta["embedDim"], image_size=meta["imageSize"], context_length=meta["contextLength"],
             vocab_size=meta["vocabSize"])
    model, _ = build_open_clip(p, model_dir / "hf")
    visual = model.visual
    missing, unexpected = visual.load_state_dict(scripted_visual.state_dict(), strict=True)
    assert not missing and not unexpected
    return visual.to(dev)


def timed(fn, warmup, iters, sync):
    for _ in range(warmup):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t) / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="clip.pt")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--modes", default="fp32,bf16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--eager", action="store_true", help="also build the eager open_clip image tower")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    clip = torch.jit.load(args.model, map_location=dev)
    visual = clip.visual
    b, s = args.batch, args.image_size
    idx = torch.arange(b * 3 * s * s, dtype=torch.float32)
    # Inputs start on the host, as the addon's do (it copies them to the device per call); pinned on
    # CUDA and copied non_blocking, as a DataLoader with pin_memory hands them over.
    x_host = (0.5 * torch.sin(0.37 * idx)).reshape(b, 3, s, s)
    y_host = (torch.arange(b * 5) % 2).float().reshape(b, 5)
    if dev.type == "cuda":
        x_host, y_host = x_host.pin_memory(), y_host.pin_memory()
    x = x_host.to(dev)
    y = y_host.to(dev)
    with torch.inference_mode():
        dim = visual(x[:1]).shape[1]
    towers = {"script": visual}
    if args.eager:
        towers["eager"] = eager_visual(args.model, dev, visual)

    def make(mode, impl="script"):
        bf16 = mode == "bf16"
        visual = towers[impl]
        torch.manual_seed(0)
        head = torch.nn.Linear(dim, 5).to(dev)
        opt = torch.optim.AdamW([
            {"params": list(visual.parameters()), "lr": 1e-5, "weight_decay": 0.01},
            {"params": list(head.parameters()), "lr": 1e-3, "weight_decay": 0.01},
        ], fused=dev.type == "cuda")  # fused on CUDA, as the addon's AdamW is

        def forward():
            with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                visual.eval()
                visual(x_host.to(dev, non_blocking=True)).float().cpu()

        def train_step():
            visual.train()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                logits = head(visual(x_host.to(dev, non_blocking=True))).float()
                loss = F.binary_cross_entropy_with_logits(logits, y_host.to(dev, non_blocking=True))
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

        return {"forward": forward, "train": train_step}

    if args.serve:
        fns = {(m, impl): make(m, impl) for m in ("fp32", "bf16") for impl in towers}
        print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "towers": list(towers)}), flush=True)
        for line in sys.stdin:
            parts = line.split()
            if len(parts) not in (2, 3):
                break
            impl = parts[2] if len(parts) == 3 else "script"
            t = time.perf_counter()
            fns[(parts[1], impl)][parts[0]]()
            sync()
            print(json.dumps({"seconds": time.perf_counter() - t}), flush=True)
        return

    out = {"device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": b, "results": {}}
    for impl in towers:
        for mode in args.modes.split(","):
            fns = make(mode, impl)
            t_fwd = timed(fns["forward"], args.warmup, args.iters, sync)
            t_train = timed(fns["train"], args.warmup, args.iters, sync)
            out["results"][f"{mode}" if impl == "script" else f"{mode}_{impl}"] = {
                "forward_img_s": b / t_fwd, "train_img_s": b / t_train}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
