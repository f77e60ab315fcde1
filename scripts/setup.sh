#!/usr/bin/env bash
# Idempotent setup for a fresh clone: npm packages, then scripts/install.mjs (the pinned Python torch,
# cached outside the clone, and the native addon), the TypeScript build and the default `tiny` model export. Each step is skipped
# when its inputs have not changed, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[setup] %s\n' "$*" >&2; }

# 1. npm packages. The package's own install step (scripts/install.mjs) runs below, once, with the
#    venv on PATH, so `npm ci` skips it here.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  CXRMASK_SKIP_BUILD=1 npm ci --no-audit --no-fund
fi

# 2. gloo headers for torch.distributed's CPU backend (ProcessGroup 'gloo'): the LibTorch wheel ships
#    c10d's headers and gloo's code, not gloo's headers. Debian/Ubuntu package them as libgloo-dev.
if [ ! -f /usr/include/gloo/algorithm.h ] && [ -z "${GLOO_INCLUDE_DIR:-}" ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    log "installing libgloo-dev (gloo headers for distributed training on CPU)"
    { apt-get update -qq && apt-get install -y -qq libgloo-dev; } >&2 || log "WARNING: libgloo-dev not installed; the gloo ProcessGroup will be off"
  else
    log "WARNING: no gloo headers: run \`sudo apt-get install libgloo-dev\` for distributed training on CPU"
  fi
fi

# 3. The same install step as `npm install cxrmask` and `npx cxrmask setup`: LibTorch from LIBTORCH /
#    Torch_DIR, else the pinned venv in ~/.cache/cxrmask (created when missing; put first on PATH so the
#    exporter and the runtime are one torch), then the cmake-js build and build/env.json.
CXRMASK_FORCE_VENV=1 node scripts/install.mjs
python=$(node scripts/install.mjs --python)
export PATH="$(dirname "$python"):$PATH"

# 4. TypeScript.
log "building TypeScript"
npx tsc -p tsconfig.json

# 5. Default model export (tiny preset, random init, with Python reference outputs).
if [ ! -f models/tiny/model.json ] || [ ! -f models/tiny/reference.json ] \
  || [ tools/export_biomedclip.py -nt models/tiny/model.json ]; then
  log "exporting tiny model to models/tiny"
  "$python" tools/export_biomedclip.py --random-init tiny --out models/tiny --seed 0
fi
# 6. Tiny segmenter export (U-Net, random init, with Python reference outputs; tools/segmenter_export.py).
if [ ! -f models/seg-tiny/model.json ] || [ ! -f models/seg-tiny/reference.json ] \
  || [ tools/segmenter_export.py -nt models/seg-tiny/model.json ]; then
  log "exporting tiny segmenter to models/seg-tiny"
  "$python" tools/segmenter_export.py --random-init unet-tiny --out models/seg-tiny --seed 0
fi
log "ready"
