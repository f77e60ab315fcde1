#!/usr/bin/env python3
"""Export BiomedCLIP (open_clip) to one TorchScript file for the cxrmask LibTorch addon.

    python tools/export_biomedclip.py --random-init tiny --out models/tiny --seed 0
    python tools/export_biomedclip.py --random-init biomedclip --out models/biomedclip --seed 0
    python tools/export_biomedclip.py --checkpoint DIR --out models/biomedclip-real

DIR holds the files published with microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224:
open_clip_pytorch_model.bin, open_clip_config.json, vocab.txt. Nothing is downloaded: the text
tower's BERT config is written locally (AutoConfig.from_pretrained on a local directory).

Output (docs/contracts.md): clip.pt, tokenizer.json (+ tokenizer_config.json), model.json,
reference.json + reference_*.bin blobs, and hf/ (local config + vocab used at export time). It is
written all or nothing (export_staging.py): a failed export leaves an existing --out as it was.

The exported module is scripted, not traced: the image tower keeps its train/eval behaviour and
has no baked-in device, and its parameters (`visual.*`) require grad so LibTorch can fine-tune it.
The text tower is a small scriptable BERT that loads the HF BERT weights under the same names.
"""

import argparse
import json
import math
import os
import pickle
import re
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # export_staging.py beside this file
from export_staging import staged_export  # noqa: E402

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

PRESETS = {
    # Exact BiomedCLIP architecture (ViT-B/16 + PubMedBERT-base, 512-d joint space).
    "biomedclip": dict(
        embed_dim=512, image_size=224, patch_size=16, vit_width=768, vit_depth=12, vit_heads=12,
        vit_mlp_ratio=4.0, bert_hidden=768, bert_layers=12, bert_heads=12, bert_intermediate=3072,
        bert_max_pos=512, vocab_size=30522, context_length=256,
        timm_model_name="vit_base_patch16_224",
    ),
    # Same structure, small widths: tests and the demo (train step on 16x224^2 well under 1 s).
    "tiny": dict(
        embed_dim=64, image_size=224, patch_size=16, vit_width=64, vit_depth=2, vit_heads=2,
        vit_mlp_ratio=4.0, bert_hidden=64, bert_layers=2, bert_heads=2, bert_intermediate=128,
        bert_max_pos=128, vocab_size=None, context_length=64,
        timm_model_name=None,
    ),
}

REFERENCE_PROMPTS = [
    "a chest X-ray showing atelectasis",
    "a chest X-ray showing cardiomegaly",
    "a chest X-ray showing consolidation",
    "a chest X-ray showing edema",
    "a chest X-ray showing pleural effusion",
    "  No   evidence of pleural effusion.  ",
    "Heart size is NORMAL; lungs are clear &amp; no pneumothorax!",
    "café-au-lait, (left) lower-lobe opacity: 3 cm?",
    # Longer than the tiny context length: exercises truncation ([SEP] kept at the end).
    " ".join(["the lungs are clear without focal consolidation"] * 12),
]

# Common English + radiology words for the generated vocab (random-init presets only).
_WORDS = """
a an the of in on at to and or no not with without is are was were be been this that there
these those for from by as it its left right bilateral lower upper middle lobe lobes base bases
chest x ray xray radiograph image photo showing shows shown evidence finding findings normal
abnormal heart size cardiac silhouette mediastinum mediastinal contour contours lung lungs
pleural effusion effusions edema pulmonary vascular congestion consolidation consolidations
atelectasis cardiomegaly enlarged enlargement pneumonia pneumothorax opacity opacities
infiltrate mass nodule fracture device devices tube line catheter support clear stable
unchanged improved worsening increased decreased small large moderate mild severe new prior
focal diffuse patchy airspace disease interval compared study frontal lateral view pa ap
portable upright supine effusion blunting costophrenic angle angles hemidiaphragm diaphragm
rib ribs spine bone bones soft tissue trachea hilar hila apex apical basilar retrocardiac
perihilar interstitial markings prominence likely possible probable suggest suggests
suggestive cannot excluded exclude minimal trace subsegmental linear plate like
""".split()
_PIECES = """##s ##es ##ed ##ing ##ly ##al ##ic ##ia ##is ##sis ##ation ##ion ##ions ##ity ##ous
##ar ##ary ##er ##ers ##est ##ment ##ness ##ary ##ectasis ##megaly ##ology ##ologic
##itis ##oma ##ema ##ural ##monia ##thorax ##idation ##ities ##ate ##ated ##ive""".split()


def log(*a):
    print("[export]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Vocab / tokenizer
# ---------------------------------------------------------------------------------------------
def generated_vocab(size: int | None) -> list[str]:
    """Real BERT special tokens at ids 0-4 ([PAD]=0), punctuation, characters, wordpieces."""
    toks: list[str] = list(SPECIALS)
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    toks += chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    toks += _PIECES + _WORDS
    seen, out = set(), []
    for t in toks:
        if t not in seen:
            seen.add(t)
            out.append(t)
    if size is not None:
        if len(out) > size:
            raise ValueError(f"vocab size {size} smaller than the generated base vocab {len(out)}")
        out += [f"[unused{i}]" for i in range(size - len(out))]
    return out


def read_vocab(path: Path) -> list[str]:
    return [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines()]


def vocab_problem(vocab: list[str]) -> str | None:
    """What makes `vocab` unusable as a BERT WordPiece vocab (None: nothing)."""
    lacking = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in vocab]
    if lacking:
        return f"lacks {', '.join(lacking)} (not a BERT vocab)"
    if vocab.index("[PAD]") != 0:
        return "[PAD] must be the first line (BERT pad_token_id 0)"
    seen: dict[str, int] = {}
    for i, t in enumerate(vocab):
        if t in seen:
            return f"token {t!r} is on lines {seen[t] + 1} and {i + 1}"
        seen[t] = i
    return None


def write_tokenizer_files(vocab: list[str], hf_dir: Path, out: Path, context_length: int):
    from tokenizers import BertWordPieceTokenizer

    problem = vocab_problem(vocab)
    if problem:
        raise ValueError(f"vocab.txt {problem}")
    (hf_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok_cfg = {
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "strip_accents": None,
        "tokenize_chinese_chars": True, "model_max_length": context_length,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
    (hf_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=1))
    # Built with the tokenizers library from vocab.txt, as BertTokenizerFast does (its constructor
    # signature changed across transformers versions; this one has not).
    fast = BertWordPieceTokenizer(str(hf_dir / "vocab.txt"), lowercase=True, clean_text=True,
                                  handle_chinese_chars=True, strip_accents=None)
    if fast.get_vocab_size() != len(vocab):
        raise RuntimeError(f"tokenizer has {fast.get_vocab_size()} tokens, vocab.txt has {len(vocab)}")
    fast.save(str(hf_dir / "tokenizer.json"))
    shutil.copy(hf_dir / "tokenizer.json", out / "tokenizer.json")
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=1))


def write_bert_config(hf_dir: Path, p: dict, vocab_size: int):
    cfg = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab_size,
        "hidden_size": p["bert_hidden"], "num_hidden_layers": p["bert_layers"],
        "num_attention_heads": p["bert_heads"], "intermediate_size": p["bert_intermediate"],
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": p["bert_max_pos"], "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "position_embedding_type": "absolute",
    }
    (hf_dir / "config.json").write_text(json.dumps(cfg, indent=1))


# ---------------------------------------------------------------------------------------------
# Scriptable text tower (BERT, post-LN) with HF parameter names
# ---------------------------------------------------------------------------------------------
class _Embeddings(nn.Module):
    def __init__(self, vocab: int, hidden: int, max_pos: int, eps: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_pos, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.size(1), device=ids.device).unsqueeze(0)
        x = self.word_embeddings(ids) + self.position_embeddings(pos)
        x = x + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class _SelfAttn(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.heads
        q = self.query(x).view(b, n, h, c // h).transpose(1, 2)
        k = self.key(x).view(b, n, h, c // h).transpose(1, 2)
        v = self.value(x).view(b, n, h, c // h).transpose(1, 2)
        p = 0.1 if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)
        return y.transpose(1, 2).reshape(b, n, c)


class _DenseNorm(nn.Module):
    def __init__(self, d_in: int, d_out: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float):
        super().__init__()
        setattr(self, "self", _SelfAttn(hidden, heads))
        self.output = _DenseNorm(hidden, hidden, eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.output(getattr(self, "self")(x, keep), x)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, inter: int):
        super().__init__()
        self.dense = nn.Linear(hidden, inter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, inter: int, eps: float):
        super().__init__()
        self.attention = _Attention(hidden, heads, eps)
        self.intermediate = _Intermediate(hidden, inter)
        self.output = _DenseNorm(inter, hidden, eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        a = self.attention(x, keep)
        return self.output(self.intermediate(a), a)


class _Encoder(nn.Module):
    def __init__(self, hidden: int, heads: int, inter: int, layers: int, eps: float):
        super().__init__()
        self.layer = nn.ModuleList([_Layer(hidden, heads, inter, eps) for _ in range(layers)])

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for blk in self.layer:
            x = blk(x, keep)
        return x


class _Bert(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        eps = cfg.layer_norm_eps
        self.embeddings = _Embeddings(cfg.vocab_size, cfg.hidden_size, cfg.max_position_embeddings, eps)
        self.encoder = _Encoder(cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size,
                                cfg.num_hidden_layers, eps)

    def forward(self, ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embeddings(ids), keep)


class TextTower(nn.Module):
    """open_clip HFTextEncoder(pooler=cls_last_hidden_state_pooler, proj=mlp) in scriptable form."""

    pad_id: int

    def __init__(self, cfg, proj: nn.Module, pad_id: int):
        super().__init__()
        self.pad_id = pad_id
        self.transformer = _Bert(cfg)
        self.proj = proj

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = (ids != self.pad_id).unsqueeze(1).unsqueeze(2)  # [B,1,1,L] True = attend
        h = self.transformer(ids, keep)
        return self.proj(h[:, 0, :])


class ClipExport(nn.Module):
    def __init__(self, visual: nn.Module, text: nn.Module, logit_scale: torch.Tensor):
        super().__init__()
        self.visual = visual
        self.text = text
        self.logit_scale = nn.Parameter(logit_scale.detach().clone())

    @torch.jit.export
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)

    @torch.jit.export
    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text(ids)

    def forward(self, x: torch.Tensor, ids: torch.Tensor):
        return self.encode_image(x), self.encode_text(ids), self.logit_scale.exp()


# ---------------------------------------------------------------------------------------------
# Building the open_clip model offline
# ---------------------------------------------------------------------------------------------
def build_open_clip(p: dict, hf_dir: Path, model_cfg: dict | None = None):
    import open_clip
    import timm

    if model_cfg is None:
        model_cfg = {
            "embed_dim": p["embed_dim"],
            "vision_cfg": {"timm_model_name": p["timm_model_name"] or "vit_base_patch16_224",
                           "timm_model_pretrained": False, "timm_pool": "", "timm_proj": "linear",
                           "image_size": p["image_size"]},
            "text_cfg": {"hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler",
                         "context_length": p["context_length"]},
        }
    model_cfg = json.loads(json.dumps(model_cfg))
    tc = model_cfg["text_cfg"]
    tc["hf_model_name"] = str(hf_dir)
    tc["hf_tokenizer_name"] = str(hf_dir)
    tc["hf_model_pretrained"] = False
    model_cfg["vision_cfg"]["timm_model_pretrained"] = False
    model = open_clip.CustomTextCLIP(**model_cfg)
    if p.get("timm_model_name") is None:
        # Same structure as ViT-B/16 (cls token, pre-norm blocks, final norm, token pool), small widths.
        from timm.models.vision_transformer import VisionTransformer
        model.visual.trunk = VisionTransformer(
            img_size=p["image_size"], patch_size=p["patch_size"], embed_dim=p["vit_width"],
            depth=p["vit_depth"], num_heads=p["vit_heads"], mlp_ratio=p["vit_mlp_ratio"],
            qkv_bias=True, num_classes=0, global_pool="token")
        model.visual.head.proj = nn.Linear(p["vit_width"], p["embed_dim"], bias=False)
        assert timm is not None
    return model, model_cfg


def to_export(model, pad_id: int) -> torch.jit.ScriptModule:
    text = model.text
    proj = text.proj
    tower = TextTower(text.config, proj, pad_id)
    sd = {k: v for k, v in text.transformer.state_dict().items() if not k.endswith("position_ids")
          and not k.endswith("token_type_ids")}
    missing, unexpected = tower.transformer.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"text tower weight mismatch: missing={missing} unexpected={unexpected}")
    visual = torch.jit.script(model.visual)
    wrapper = ClipExport(visual, tower, model.logit_scale)
    return torch.jit.script(wrapper)


def check_no_device_constants(m: torch.jit.ScriptModule):
    bad = re.compile(r'torch\.device\("(cpu|cuda)[^"]*"\)|"cuda(:\d+)?"')
    for name, sub in [("", m)] + list(m.named_modules()):
        try:
            code = sub.code
        except Exception:
            continue
        if bad.search(code):
            raise RuntimeError(f"exported module {name or '<root>'} has a hard-coded device:\n{code}")


def check_trainable(m: torch.jit.ScriptModule, image_size: int):
    params = [(n, p) for n, p in m.named_parameters() if n.startswith("visual.")]
    assert params and all(p.requires_grad for _, p in params), "image tower parameters must require grad"
    m.train()
    x = torch.randn(2, 3, image_size, image_size)
    y = m.encode_image(x)
    y.sum().backward()
    assert all(p.grad is not None for _, p in params), "gradient did not reach every image-tower parameter"
    for _, p in m.named_parameters():
        p.grad = None
    m.eval()


# ---------------------------------------------------------------------------------------------
def write_blob(out: Path, name: str, arr: np.ndarray) -> dict:
    arr = np.ascontiguousarray(arr)
    (out / name).write_bytes(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    return {"file": name, "dtype": str(arr.dtype), "shape": list(arr.shape)}


# what a BiomedCLIP checkpoint folder holds as published
CHECKPOINT_FILES = ("open_clip_pytorch_model.bin", "open_clip_config.json", "vocab.txt")


def names_checkpoint_file(args, filename) -> bool:
    """Whether `filename` (a FileNotFoundError's) is the --checkpoint folder or a file in it."""
    if args.checkpoint is None or not isinstance(filename, (str, bytes, os.PathLike)):
        return False
    ck = Path(os.path.abspath(args.checkpoint))
    p = Path(os.path.abspath(os.fsdecode(filename)))
    return p == ck or p.parent == ck


class CheckpointError(Exception):
    """A file of the --checkpoint folder that cannot be exported: the user's to fix (one line, exit 2)."""

    def __init__(self, path: Path, what: str):
        super().__init__(f"{path}: {what}")


# What torch.load raises for bytes that are not a whole torch file (seen truncating real files and
# changing bytes in them): all of them are the file's fault.
_DAMAGED_TORCH_FILE = (OSError, EOFError, RuntimeError, ValueError, LookupError, TypeError, AssertionError,
                       OverflowError, struct.error, pickle.UnpicklingError)


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def read_checkpoint_config(path: Path) -> dict:
    """open_clip_config.json, checked as far as the export reads it."""
    try:
        oc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(path, "not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except FileNotFoundError:
        raise  # gone since main() looked: said there
    except OSError as e:
        raise CheckpointError(path, f"cannot be read ({e.strerror})") from None
    if not isinstance(oc, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(oc), "number")
        raise CheckpointError(path, f"not an open_clip config (a JSON {kind}, not an object)")
    mc = oc.get("model_cfg")
    if not isinstance(mc, dict):
        raise CheckpointError(path, "not an open_clip config (no model_cfg object)")
    if not _positive_int(mc.get("embed_dim")):
        raise CheckpointError(path, "model_cfg.embed_dim is not a positive integer")
    for part, size in (("vision_cfg", "image_size"), ("text_cfg", "context_length")):
        if not isinstance(mc.get(part), dict):
            raise CheckpointError(path, f"model_cfg.{part} is not an object")
        if size in mc[part] and not _positive_int(mc[part][size]):
            raise CheckpointError(path, f"model_cfg.{part}.{size} is not a positive integer")
    pre = oc.get("preprocess_cfg", {})
    if not isinstance(pre, dict):
        raise CheckpointError(path, "preprocess_cfg is not an object")
    for k in ("mean", "std"):
        v = pre.get(k)
        if v is not None and not (isinstance(v, list) and len(v) == 3 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
            raise CheckpointError(path, f"preprocess_cfg.{k} is not a list of 3 numbers")
    return oc


def read_checkpoint_vocab(path: Path) -> list[str]:
    try:
        vocab = read_vocab(path)
    except UnicodeDecodeError:
        raise CheckpointError(path, "not a vocab (not UTF-8 text)") from None
    except FileNotFoundError:
        raise  # gone since main() looked: said there
    except OSError as e:
        raise CheckpointError(path, f"cannot be read ({e.strerror})") from None
    problem = vocab_problem(vocab)
    if problem:
        raise CheckpointError(path, problem)
    return vocab


def read_checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    """open_clip_pytorch_model.bin: a state dict (names to tensors), loaded with tensors only."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise  # gone since main() looked: said there
    except OSError as e:
        raise CheckpointError(path, f"cannot be read ({e.strerror})") from None
    if not head:
        raise CheckpointError(path, "empty file (not a PyTorch weights file)")
    # a torch zip archive, or the pickle of torch's legacy format
    kind = "torch zip archive" if head == b"PK\x03\x04" else "legacy torch file" if head[0] == 0x80 else None
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except _DAMAGED_TORCH_FILE as e:
        # torch's own text is not passed on: for a file with other objects than tensors, it advises
        # loading with weights_only=False, which runs whatever code the file holds
        if kind is None:
            what = "not a PyTorch weights file (neither a torch zip archive nor a legacy torch file)"
        elif isinstance(e, pickle.UnpicklingError):
            what = f"not a plain state dict, or damaged (a {kind} that holds more than tensors: not loaded)"
        else:
            what = f"truncated or damaged (a {kind} that cannot be read)"
        raise CheckpointError(path, what) from None
    if not isinstance(sd, dict):
        raise CheckpointError(path, f"not a state dict (a {type(sd).__name__}, not names to tensors)")
    for k, v in sd.items():
        if not isinstance(k, str):
            raise CheckpointError(path, f"not a state dict (the key {k!r} is not a name)")
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(path, f"not a state dict ({k!r} holds a {type(v).__name__}, not a tensor)")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(path, f"damaged: {k} holds NaN or infinite values")
    return {k: v for k, v in sd.items() if not k.endswith("position_ids")}


def check_weights_match(path: Path, sd: dict[str, torch.Tensor], model: nn.Module) -> None:
    """The state dict has the model's names and shapes (another model's weights are refused, named)."""
    want = {k: v.shape for k, v in model.state_dict().items()}
    missing = [k for k in want if k not in sd and not k.endswith("token_type_ids")]
    unexpected = [k for k in sd if k not in want]
    reshaped = [k for k in sd if k in want and sd[k].shape != want[k]]

    def some(keys, show=lambda k: k):
        return ", ".join(show(k) for k in keys[:3]) + (", …" if len(keys) > 3 else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} weights missing ({some(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} not in the model ({some(unexpected)})")
    if reshaped:
        def shapes(k):
            return f"{k}: {list(sd[k].shape)} in the file, {list(want[k])} in the model"
        parts.append(f"{len(reshaped)} of another shape ({some(reshaped, shapes)})")
    if parts:
        raise CheckpointError(path, "not the weights of the model that open_clip_config.json and vocab.txt "
                                    f"describe: {'; '.join(parts)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--random-init", choices=sorted(PRESETS), help="random weights, preset architecture")
    src.add_argument("--checkpoint", type=Path, help="dir with open_clip_pytorch_model.bin, "
                     "open_clip_config.json, vocab.txt")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ref-batch", type=int, default=2, help="images in the reference input")
    args = ap.parse_args(argv)
    if args.checkpoint is not None:
        if not args.checkpoint.is_dir():
            ap.exit(2, f"error: --checkpoint {args.checkpoint}: no such folder\n")
        missing = [f for f in CHECKPOINT_FILES if not (args.checkpoint / f).is_file()]
        if missing:
            ap.exit(2, f"error: --checkpoint {args.checkpoint}: missing {', '.join(missing)} "
                       f"(a BiomedCLIP checkpoint folder as published holds {', '.join(CHECKPOINT_FILES)})\n")

    # everything is written into a temp folder beside --out, which replaces --out only once the export
    # passed its checks: a failure leaves an existing export as it was (export_staging.py)
    try:
        with staged_export(args.out) as staging:
            export(args, staging)
    except FileNotFoundError as e:
        # a file of the --checkpoint folder that is not there (gone since the check above) is the
        # user's to fix: one line, exit 2; any other (a file of this package or the venv) is a fault
        # of the installation: the traceback, exit 1
        if not names_checkpoint_file(args, e.filename):
            raise
        ap.exit(2, f"error: {e.filename}: no such file ({e.strerror})\n")
    except CheckpointError as e:
        ap.exit(2, f"error: {e}\n")
    log(f"wrote {args.out}/clip.pt, tokenizer.json, model.json, reference.json")
    return 0


def export(args, out: Path) -> None:
    """Writes the export of `args` into the folder `out`, checking it against the open_clip model."""
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    hf_dir = out / "hf"
    hf_dir.mkdir(exist_ok=True)

    if args.random_init:
        preset = args.random_init
        p = dict(PRESETS[preset])
        vocab = generated_vocab(p["vocab_size"])
        p["vocab_size"] = len(vocab)
        model_cfg = None
        mean, std = OPENAI_MEAN, OPENAI_STD
    else:
        preset = "biomedclip"
        p = dict(PRESETS["biomedclip"])
        ck: Path = args.checkpoint
        # every file is read and checked before anything is built: a damaged one is named, exit 2
        oc = read_checkpoint_config(ck / "open_clip_config.json")
        vocab = read_checkpoint_vocab(ck / "vocab.txt")
        sd = read_checkpoint_weights(ck / "open_clip_pytorch_model.bin")
        p["vocab_size"] = len(vocab)
        model_cfg = oc["model_cfg"]
        p["embed_dim"] = model_cfg["embed_dim"]
        p["context_length"] = model_cfg["text_cfg"].get("context_length", 256)
        p["image_size"] = model_cfg["vision_cfg"].get("image_size", 224)
        pre = oc.get("preprocess_cfg", {})
        mean, std = pre.get("mean", OPENAI_MEAN), pre.get("std", OPENAI_STD)

    write_bert_config(hf_dir, p, p["vocab_size"])
    write_tokenizer_files(vocab, hf_dir, out, p["context_length"])
    if args.checkpoint:
        try:
            model, model_cfg = build_open_clip(p, hf_dir, model_cfg)
        except (TypeError, ValueError, KeyError, RuntimeError) as e:
            # open_clip/timm refusing what model_cfg says (an unknown timm model, an unknown field)
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            raise CheckpointError(ck / "open_clip_config.json",
                                  f"model_cfg does not describe an open_clip model ({reason})") from None
        check_weights_match(ck / "open_clip_pytorch_model.bin", sd, model)
        model.load_state_dict(sd, strict=False)
    else:
        model, model_cfg = build_open_clip(p, hf_dir, model_cfg)
    model.eval()
    pad_id = vocab.index("[PAD]")

    log(f"scripting ({preset}, {sum(t.numel() for t in model.parameters()) / 1e6:.1f}M params)")
    scripted = to_export(model, pad_id)
    check_no_device_constants(scripted)
    scripted.eval()
    scripted.save(str(out / "clip.pt"))

    # Reference outputs come from the open_clip model itself, then the export is checked against them.
    import open_clip
    tokenizer = open_clip.tokenizer.HFTokenizer(str(hf_dir), context_length=p["context_length"])
    ids = tokenizer(REFERENCE_PROMPTS)
    g = torch.Generator().manual_seed(1234)
    s = p["image_size"]
    images = torch.randn(args.ref_batch, 3, s, s, generator=g)
    with torch.no_grad():
        img_ref = model.encode_image(images).float()
        txt_ref = model.encode_text(ids).float()
        loaded = torch.jit.load(str(out / "clip.pt"), map_location="cpu").eval()
        img_ts = loaded.encode_image(images)
        txt_ts = loaded.encode_text(ids)
    d_img = (img_ts - img_ref).abs().max().item()
    d_txt = (txt_ts - txt_ref).abs().max().item()
    log(f"export vs open_clip: image max|diff|={d_img:.2e} text max|diff|={d_txt:.2e}")
    if not (d_img <= 1e-4 and d_txt <= 1e-4):  # NaN is a failure too
        raise RuntimeError("the TorchScript export does not reproduce the open_clip model")
    check_trainable(loaded, s)

    ref = {
        "images": write_blob(out, "reference_images.bin", images.numpy().astype(np.float32)),
        "imageEmbeddings": write_blob(out, "reference_image_embeddings.bin", img_ref.numpy()),
        "prompts": REFERENCE_PROMPTS,
        "tokenIds": ids.tolist(),
        "textEmbeddings": write_blob(out, "reference_text_embeddings.bin", txt_ref.numpy()),
        "logitScale": float(model.logit_scale.item()),
        "exportMaxAbsDiff": {"image": d_img, "text": d_txt},
    }
    (out / "reference.json").write_text(json.dumps(ref))
    meta = {
        "preset": preset, "source": "checkpoint" if args.checkpoint else "random-init", "seed": args.seed,
        "embedDim": p["embed_dim"], "imageSize": s, "patchSize": p["patch_size"],
        "contextLength": p["context_length"], "vocabSize": p["vocab_size"], "padId": pad_id,
        "mean": mean, "std": std, "logitScale": ref["logitScale"], "visionWidth":
        model.visual.head.proj.in_features, "torchVersion": torch.__version__.split("+")[0],
        "files": {"model": "clip.pt", "tokenizer": "tokenizer.json", "reference": "reference.json"},
    }
    (out / "model.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    sys.exit(main())
