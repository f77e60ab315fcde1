"""Python side of bench/attribution.ts: the same attributions in eager PyTorch on the same TorchScript
file, batched the way a PyTorch user would (Captum-style: all IG steps / SmoothGrad samples of an image
in one batch of `batch` rows). With --serve: prints "ready", then for each method name read from stdin
runs it once and prints its seconds (the addon's calls interleave with these, so both see the same
machine load). Without: one JSON line, method -> images/s (median of iters). --eager runs the image
tower as the open_clip model a PyTorch user builds (timm ViT, the file's weights copied in) instead of
the TorchScript file; --bf16 runs it under bf16 autocast (what that user runs on a GPU)."""
import argparse
import json
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--n", type=int, default=4)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--samples", type=int, default=8)
ap.add_argument("--steps", type=int, default=16)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--iters", type=int, default=3)
ap.add_argument("--size", type=int, default=224)
ap.add_argument("--device", default="cpu")
ap.add_argument("--serve", action="store_true")
ap.add_argument("--eager", action="store_true", help="the eager open_clip image tower")
ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
a = ap.parse_args()
torch.set_num_threads(a.threads)
dev = torch.device(a.device)
clip = torch.jit.load(a.model, map_location=dev).eval()
torch._C._set_graph_executor_optimize(False)  # as the addon does for backward passes
encode = clip.encode_image
if a.eager:
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from native_torch import eager_visual  # noqa: E402

    encode = eager_visual(a.model, dev, clip.visual).eval()
g = torch.Generator().manual_seed(0)
x = torch.randn((a.n, 3, a.size, a.size), generator=g).to(dev)
with torch.no_grad():
    d = encode(x[:1]).shape[1]
t = torch.nn.functional.normalize(torch.randn((2, d), generator=g), dim=1).to(dev)
sign = torch.tensor([1.0, -1.0], device=dev)
scale = clip.logit_scale.exp().item()


def f(img):
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
        e = encode(img)
    e = torch.nn.functional.normalize(e.float(), dim=1)
    return (e @ t.T * sign).sum(1) * scale


def grads(inp):
    out = []
    for s in range(0, inp.shape[0], a.batch):
        z = inp[s : s + a.batch].detach().requires_grad_(True)
        (gz,) = torch.autograd.grad(f(z).sum(), z)
        out.append(gz)
    return torch.cat(out)


def gradient():
    return grads(x).abs().sum(1)


def smoothgrad():
    maps = []
    for i in range(a.n):
        xi = x[i : i + 1]
        sd = 0.15 * (xi.max() - xi.min())
        noisy = xi + torch.randn((a.samples, 3, a.size, a.size), generator=g).to(dev) * sd
        maps.append(grads(noisy).abs().sum(1).mean(0))
    return torch.stack(maps)


def ig():
    alphas = (torch.arange(a.steps, device=dev) + 0.5) / a.steps
    path = (alphas.view(1, -1, 1, 1, 1) * x.unsqueeze(1)).reshape(-1, 3, a.size, a.size)
    gr = grads(path).view(a.n, a.steps, 3, a.size, a.size).mean(1)
    with torch.no_grad():
        f(torch.cat([x, torch.zeros_like(x)]))
    return (x * gr).abs().sum(1)


METHODS = {"gradient": gradient, "smoothgrad": smoothgrad, "ig": ig}


def timed(fn):
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


if a.serve:
    import sys

    print("ready", flush=True)
    for line in sys.stdin:
        print(timed(METHODS[line.strip()]), flush=True)
    sys.exit(0)

res = {}
for name, fn in (("gradient", gradient), ("smoothgrad", smoothgrad), ("ig", ig)):
    for _ in range(a.warmup):
        fn()
    ts = []
    for _ in range(a.iters):
        ts.append(timed(fn))
    ts.sort()
    res[name] = a.n / ts[len(ts) // 2]
print(json.dumps(res))
