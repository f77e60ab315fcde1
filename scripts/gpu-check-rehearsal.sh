#!/usr/bin/env bash
# Rehearses the GPU machine's run here, on CPU, as that machine would see it: a fresh folder holding
# only what travels (the tracked and untracked-not-ignored files, plus the carry from
# `bash scripts/gpu-check.sh --prepare`), no node, npm or xz on PATH, and a Python that has torch, timm
# and transformers but not open_clip, ftfy or wcwidth. Then `bash scripts/gpu-check.sh` runs there with
# CXRMASK_GPU_CHECK_DEVICE=cpu and its results are checked: setup used the carried Node, packages,
# wheels and addon, every section is ok, and $OUT holds results.json and gpu-check.log only. A second
# call then plays a rerun on the warm machine after a fix here: same tree, a changed dist.tar.xz, which
# must replace the dist/ the first call unpacked.
#
#   bash scripts/gpu-check.sh --prepare && bash scripts/gpu-check-rehearsal.sh
# Passed through: CXRMASK_GPU_CHECK_ONLY, CXRMASK_GPU_CHECK_SECONDS (default 1200 here),
# CXRMASK_GPU_CHECK_BUILD=1 (rehearse the build-there path too; several minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[rehearsal] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ -f .cache/gpu/addon.tar.xz ] || die ".cache/gpu is not prepared: run bash scripts/gpu-check.sh --prepare"
venv_py=$(node -p "require('./build/env.json').python") || die "build/env.json missing: run scripts/setup.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/cxrmask-rehearsal-XXXXXX")
trap 'rm -rf "$work"' EXIT
tree="$work/tree" out="$work/out" bin="$work/bin" py="$work/python"
mkdir -p "$tree/.cache" "$out" "$bin" "$work/home"

# What travels: the files git does not ignore, and the carry.
# (a tracked file deleted from the work tree does not travel either)
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done |
  xargs -0 -r -n 200 cp --parents -a -t "$tree"
cp -a .cache/gpu "$tree/.cache/"
log "tree: $(du -sh "$tree" | cut -f1) ($(git ls-files -co --exclude-standard | wc -l) files + .cache/gpu)"

# PATH: every tool of /usr/bin and /bin but node, npm, npx, corepack, xz and the system Pythons.
for f in /usr/bin/* /bin/*; do
  b=$(basename "$f")
  case $b in node | npm | npx | corepack | xz | unxz | xzcat | python* | pip*) continue ;; esac
  [ -e "$bin/$b" ] || ln -sf "$f" "$bin/$b"
done

# Python: a venv over the project venv's packages, with open_clip, ftfy and wcwidth hidden.
base_py=$("$venv_py" -c 'import sys, os; print(os.path.join(sys.base_prefix, "bin", "python3"))')
"$base_py" -m venv "$py"
site=$("$py/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
venv_site=$("$venv_py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat >"$site/_rehearsal_hide.py" <<PY
# The GPU image lacks these; found only outside the project venv (in the check's --target folder).
import importlib.machinery, sys
HIDDEN = {"open_clip", "open_clip_train", "ftfy", "wcwidth"}
class Hide:
    def find_spec(self, name, path=None, target=None):
        if "." in name or name not in HIDDEN:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [p for p in sys.path if p != "$venv_site"])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return spec
sys.meta_path.insert(0, Hide())
PY
printf 'import _rehearsal_hide\n%s\n' "$venv_site" >"$site/zz_rehearsal_venv.pth"
"$py/bin/python" -c 'import torch, timm, transformers' || die "the rehearsal Python cannot import torch, timm, transformers"
if "$py/bin/python" -c 'import open_clip' 2>/dev/null; then die "open_clip is not hidden"; fi

# check_run ONLY BUILD: scripts/gpu-check.sh there, as the GPU machine runs it; then its results checked.
check_run() {
  local only=$1 build=$2 rc
  rm -rf "$out" && mkdir -p "$out"
  log "running scripts/gpu-check.sh in $tree${only:+ (sections $only)}"
  set +e
  (cd "$tree" && env -i HOME="$work/home" PATH="$py/bin:$bin" OUT="$out" CXRMASK_GPU_CHECK_DEVICE=cpu \
    CXRMASK_GPU_CHECK_SECONDS="${CXRMASK_GPU_CHECK_SECONDS:-1200}" \
    ${only:+CXRMASK_GPU_CHECK_ONLY="$only"} ${build:+CXRMASK_GPU_CHECK_BUILD="$build"} \
    bash scripts/gpu-check.sh)
  rc=$?
  set -e
  node - "$out" "$rc" "$build" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const [out, rc, build] = process.argv.slice(2);
const problems = [];
const files = fs.readdirSync(out).sort().join(',');
if (files !== 'gpu-check.log,results.json') problems.push(`$OUT holds ${files}`);
const r = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
const setup = r.sections.setup;
if (!setup || setup.status !== 'ok') problems.push(`setup: ${JSON.stringify(setup)}`);
const want = build === '1' ? /addon built here/ : /carried addon used/;
if (setup && !want.test(setup.note)) problems.push(`setup note lacks ${want}: ${setup.note}`);
if (setup && !/node v\d+/.test(setup.note)) problems.push(`setup note names no node: ${setup.note}`);
for (const [name, s] of Object.entries(r.sections)) if (s.status !== 'ok') problems.push(`${name}: ${s.status} ${s.note}`);
if (rc !== '0') problems.push(`scripts/gpu-check.sh exited ${rc}`);
for (const p of problems) console.error(`[rehearsal] FAIL ${p}`);
console.error(`[rehearsal] ${problems.length === 0 ? 'passed' : 'FAILED'}: ${Object.keys(r.sections).length} sections, ${r.table.length} table rows`);
process.exit(problems.length === 0 ? 0 : 1);
JS
}

check_run "${CXRMASK_GPU_CHECK_ONLY:-}" "${CXRMASK_GPU_CHECK_BUILD:-}"

# A second call on the warm machine after a fix here: the tree keeps last call's ignored outputs, the
# carry is new. Its dist/ must replace the old one (no stale module left) and the check still pass.
rm -rf "$work/dist-new" && mkdir -p "$work/dist-new"
tar -xJf .cache/gpu/dist.tar.xz -C "$work/dist-new"
echo "carried by the second call" >"$work/dist-new/dist/carry-marker.txt"
(cd "$work/dist-new" && tar -cf - dist | xz -T0 -1 >"$tree/.cache/gpu/dist.tar.xz")
echo "export const stale = true;" >"$tree/dist/stale-from-the-last-call.js"
check_run env ""
[ -f "$tree/dist/carry-marker.txt" ] || die "the second call kept the last call's dist/ (the new carry was not unpacked)"
[ ! -e "$tree/dist/stale-from-the-last-call.js" ] || die "a module of the last call's dist/ lingers"
log "second call: the changed dist.tar.xz replaced dist/"
