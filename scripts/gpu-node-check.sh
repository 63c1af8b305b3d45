#!/usr/bin/env bash
# The CUDA backend's Node path on a GPU machine without Node (carry .gpu-node,
# made here by `npx tsx tools/gpu-node.ts prepare`): unpacks the carried node
# binary and the packages, and runs the bundled check, which runs every golden case
# (book, extra, op matrix, zoo) on the CUDA addons (gen check's runner and tolerances) and trains Net and NetResDeep on the
# shipped CIFAR-2 sample through the API. Report: $OUT/node-report.md, else
# ./gpu-node-report.md. About a minute on an H100.
set -u
cd "$(dirname "$0")/.." || exit 2
DIR=${TK_GPU_NODE_DIR:-.gpu-node}
if [ ! -f "$DIR/node.xz" ] || [ ! -f "$DIR/gpu-node.mjs" ]; then
  echo "no $DIR/node.xz or $DIR/gpu-node.mjs: run 'npx tsx tools/gpu-node.ts prepare' where Node is, and carry $DIR" >&2
  exit 2
fi
BIN=$(mktemp -d "${TMPDIR:-/tmp}/tk-node.XXXXXX")
xz -dc "$DIR/node.xz" >"$BIN/node" && chmod +x "$BIN/node" || { echo "could not unpack $DIR/node.xz" >&2; exit 2; }
nvidia-smi -L 2>/dev/null || echo "(nvidia-smi not found)"
"$BIN/node" --version || { echo "the carried node does not run here (glibc >= 2.28 needed)" >&2; exit 2; }
if [ -f "$DIR/pkg.tar.xz" ]; then
  xz -dc "$DIR/pkg.tar.xz" | tar -C "$DIR" -xf - || { echo "could not unpack $DIR/pkg.tar.xz" >&2; exit 2; }
fi
"$BIN/node" "$DIR/gpu-node.mjs" run "${OUT:-}"
