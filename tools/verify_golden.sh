#!/usr/bin/env bash
# Regenerate every case of ../shared/golden with tools/dump_golden_case.py into
# a temp folder and compare the files byte for byte. Needs PyTorch 1.13.1 (the
# Debian python3-torch build that made them); another build may differ in the
# last bits of the float results, but not in the format.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
GOLDEN=${GOLDEN:-../shared/golden}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
status=0
for dir in "$GOLDEN"/*/; do
  c=$(basename "$dir")
  read -r model args batch lr wd l2 l1 mom seed dseed < <("$PY" -c "
import json, sys; d = json.load(open(sys.argv[1])); t = d['train']
print(d['model'], json.dumps(d['args'], separators=(',', ':')), d['batch'], t['lr'], t['weight_decay'],
      t['l2_lambda'], t['l1_lambda'], t['momentum'], d['seed'], d['data_seed'])" "$dir/case.json")
  "$PY" tools/dump_golden_case.py --model "book_models:$model" --args "$args" --batch "$batch" --lr "$lr" \
    --weight-decay "$wd" --l2 "$l2" --l1 "$l1" --momentum "$mom" --seed "$seed" --data-seed "$dseed" \
    --case "$c" --out "$OUT/$c" >/dev/null
  for f in weights.safetensors io.safetensors case.json; do
    if cmp -s "$OUT/$c/$f" "$dir/$f"; then echo "same     $c/$f"; else echo "DIFFERS  $c/$f"; status=1; fi
  done
done
exit $status
