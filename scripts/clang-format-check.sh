#!/usr/bin/env bash
# Checks native/* against .clang-format without changing files (npm run lint).
# Uses the npm clang-format binary, else a clang-format on PATH (e.g. Debian's).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x node_modules/.bin/clang-format ] && node_modules/.bin/clang-format --version >/dev/null 2>&1; then
  CF=node_modules/.bin/clang-format
elif command -v clang-format >/dev/null 2>&1; then
  CF=clang-format
else
  echo "clang-format not found: run npm ci (devDependency clang-format) or apt-get install clang-format" >&2
  exit 1
fi
shopt -s nullglob
files=(native/*.cc native/*.h)
[ ${#files[@]} -eq 0 ] && exit 0
"$CF" --version >&2
"$CF" --style=file --dry-run --Werror "${files[@]}"
echo "clang-format: ${#files[@]} files OK" >&2
