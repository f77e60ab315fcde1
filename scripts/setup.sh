#!/usr/bin/env bash
# Idempotent setup for a fresh clone: Python torch (pinned, cached outside the clone), npm packages,
# the native addon, the TypeScript build and the default `tiny` model export. Each step is skipped
# when its inputs have not changed, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[setup] %s\n' "$*" >&2; }

CXRMASK_HOME="${CXRMASK_HOME:-$HOME/.cache/cxrmask}"
req_hash=$(sha256sum tools/requirements.txt | cut -c1-12)
VENV="${CXRMASK_VENV:-$CXRMASK_HOME/venv-$req_hash}"
mkdir -p build "$CXRMASK_HOME"

# 1. Python torch + exporter deps, in a venv outside the clone so CI does not re-download GBs.
if [ -n "${LIBTORCH:-}${Torch_DIR:-}" ] && [ -z "${CXRMASK_FORCE_VENV:-}" ] && [ ! -x "$VENV/bin/python" ]; then
  log "LIBTORCH/Torch_DIR set: the addon builds against it; the Python venv is still needed for export"
fi
if [ ! -f "$VENV/.complete" ]; then
  log "creating Python venv $VENV (torch pinned in tools/requirements.txt)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r tools/requirements.txt
  touch "$VENV/.complete"
fi
export PATH="$VENV/bin:$PATH"
write_env() { mkdir -p build && printf '{"python": "%s"}\n' "$VENV/bin/python" > build/env.json; }
write_env

# 2. npm packages.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
fi

# 2b. gloo headers for torch.distributed's CPU backend (ProcessGroup 'gloo'): the LibTorch wheel ships
#     c10d's headers and gloo's code, not gloo's headers. Debian/Ubuntu package them as libgloo-dev.
if [ ! -f /usr/include/gloo/algorithm.h ] && [ -z "${GLOO_INCLUDE_DIR:-}" ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    log "installing libgloo-dev (gloo headers for distributed training on CPU)"
    { apt-get update -qq && apt-get install -y -qq libgloo-dev; } >&2 || log "WARNING: libgloo-dev not installed; the gloo ProcessGroup will be off"
  else
    log "WARNING: no gloo headers: run \`sudo apt-get install libgloo-dev\` for distributed training on CPU"
  fi
fi

# 3. Native addon (cmake-js). Skipped when the .node is newer than every native source and was built
#    against the same LibTorch (stamp); otherwise an incremental build.
torch_facts=$(python - <<'PY'
import re, torch
cfg = torch.__config__.show()
m = re.search(r"BLAS_INFO=(\w+)", cfg)
print(torch.__version__, torch.__file__, m.group(1) if m else "none")
PY
)
blas=${torch_facts##* }
case "$blas" in
  mkl|openblas|accelerate|blis|armpl|flexi*) ;;
  *) log "WARNING: torch uses BLAS '$blas', which is slow; install the pip torch wheel (MKL on x86_64) or a build with OpenBLAS" ;;
esac
stamp="${LIBTORCH:-}|${Torch_DIR:-}|${torch_facts}|${CXRMASK_CMAKE_ARGS:-}"
addon=build/Release/cxrmask_native.node
newest_src=$( (ls -t native/* CMakeLists.txt third_party/*.cmake tools/requirements.txt 2>/dev/null || true) | head -1)
if [ -f "$addon" ] && [ "$addon" -nt "$newest_src" ] && [ "$(cat build/native.stamp 2>/dev/null)" = "$stamp" ]; then
  log "native addon up to date"
else
  log "building native addon (LibTorch: ${LIBTORCH:-${Torch_DIR:-python torch ${torch_facts%% *}}})"
  npx cmake-js compile --parallel "${CXRMASK_JOBS:-2}" --log-level warn ${CXRMASK_CMAKE_ARGS:-}
  printf '%s' "$stamp" > build/native.stamp
fi

# cmake-js may clear build/ when it reconfigures; the tests and benches read the venv from here.
write_env

# 4. TypeScript.
log "building TypeScript"
npx tsc -p tsconfig.json

# 5. Default model export (tiny preset, random init, with Python reference outputs).
if [ ! -f models/tiny/model.json ] || [ ! -f models/tiny/reference.json ] \
  || [ tools/export_biomedclip.py -nt models/tiny/model.json ]; then
  log "exporting tiny model to models/tiny"
  python tools/export_biomedclip.py --random-init tiny --out models/tiny --seed 0
fi
# 6. Tiny segmenter export (U-Net, random init, with Python reference outputs; tools/segmenter_export.py).
if [ ! -f models/seg-tiny/model.json ] || [ ! -f models/seg-tiny/reference.json ] \
  || [ tools/segmenter_export.py -nt models/seg-tiny/model.json ]; then
  log "exporting tiny segmenter to models/seg-tiny"
  python tools/segmenter_export.py --random-init unet-tiny --out models/seg-tiny --seed 0
fi
log "ready"
