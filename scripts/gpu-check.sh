#!/usr/bin/env bash
# The one command for a GPU session (no Node.js needed there): builds every
# generated CUDA package in .gpu/ and its check harness, compares each with the
# reference data (TypeScript interpreter and PyTorch golden cases), times
# 100 epochs of CIFAR-2 training (Net, NetResDeep) against PyTorch on the same
# GPU, and writes a markdown report to $OUT/report.md ($OUT set) or ./gpu-report.md.
#
#   npx tsx tools/export-reference.ts        # here, once: writes .gpu/ (git-ignored)
#   bash scripts/gpu-check.sh                # on the GPU machine; carry .gpu
#
# Environment: TK_GPU_DIR (default .gpu), TK_EPOCHS (default 100), TK_JOBS
# (default 16), TK_CASE_TIMEOUT (seconds per check, default 300), TK_CUDA_EMU=1
# (CPU emulation build, for testing this script without a GPU), TK_BENCH_LIMIT
# (train on that many images only), TK_PROFILE_STEPS (default 20), TK_SKIP_TORCH=1,
# TK_SKIP_BENCH=1, TK_TORCH_BUDGET (seconds for all PyTorch runs, default 150),
# CUDA_ARCHS (default "80;90"). Expected on an H100: build ~1 min, checks ~1 min, our
# timings < 1 min, PyTorch <= 260 s: about 6 minutes in all.
# It continues past any one failure and always writes the report.
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
GPU_DIR=${TK_GPU_DIR:-$ROOT/.gpu}
EPOCHS=${TK_EPOCHS:-100}
JOBS=${TK_JOBS:-16}
EMU=${TK_CUDA_EMU:-0}
ARCHS=${CUDA_ARCHS:-80;90}
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  REPORT=$OUT/report.md
  LOG=$OUT/gpu-check.log
else
  REPORT=$ROOT/gpu-report.md
  LOG=$ROOT/gpu-check.log
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tk-gpu.XXXXXX")
BUILD=$WORK/build
START=$(date +%s)
: >"$LOG"
log() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }
run_logged() { # run_logged <timeout-seconds> <output file> cmd...
  local t=$1 out=$2
  shift 2
  timeout --kill-after=10 "$t" "$@" >"$out" 2>&1
  local rc=$?
  cat "$out" >>"$LOG"
  return $rc
}

declare -a CASE_ROWS=() BENCH_ROWS=() TORCH_ROWS=() PROFILE_ROWS=() NOTES=()
GPU_NAME="(unknown)"
BUILD_STATUS="not run"

write_report() {
  {
    echo "# tensorkiln CUDA backend: GPU check"
    echo
    echo "- GPU: $GPU_NAME"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), total script time $(($(date +%s) - START)) s"
    echo "- nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo 'not found')"
    echo "- build: $BUILD_STATUS (CUDA architectures $ARCHS$([ "$EMU" = 1 ] && echo ', CPU EMULATION'))"
    echo
    echo "## Equivalence"
    echo
    echo "Tolerances: logits/loss 1e-5 + 1e-4·|ref|; gradients 1e-4·max|ref| + 1e-6; state after k steps k·1e-6 + 1e-5·|ref|; counters exact."
    echo "'margin': the smallest distance of a ReLU input, or of a max-pool window's top-2 gap, from its boundary over the case's forwards (replayed in the float64 interpreter). Below ~1e-6 two correct float32 implementations may route a gradient element differently; a multi-step case then drifts apart after that step (seen on the CPU emulator: golden.NetBatchNorm_steps20, gap 2.2e-7 at step 13, after-state off by 1.3e-4 while every step before matched to 1e-7). A FAIL with such a margin is numerical, not a kernel error."
    echo
    echo "| case | package | reference | result | checks | failed | worst (err/allowed) | margin |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for r in "${CASE_ROWS[@]}"; do echo "$r"; done
    echo
    echo "## Training time: CIFAR-2, 10,000 images, batch 64, lr 1e-2, plain SGD"
    echo
    echo "| implementation | model | epochs | train time (s) | per 100 epochs (s) | img/s | last epoch loss | val acc |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for r in "${BENCH_ROWS[@]}"; do echo "$r"; done
    for r in "${TORCH_ROWS[@]}"; do echo "$r"; done
    echo
    if [ ${#PROFILE_ROWS[@]} -gt 0 ]; then
      echo "## Kernel profile (20 uncaptured steps at batch 64, CUDA events around each launch; slowest first)"
      echo
      echo "| model | kernel | launches per step | ms per step |"
      echo "| --- | --- | --- | --- |"
      for r in "${PROFILE_ROWS[@]}"; do echo "$r"; done
      echo
    fi
    if [ ${#NOTES[@]} -gt 0 ]; then
      echo "## Notes"
      echo
      for n in "${NOTES[@]}"; do echo "- $n"; done
      echo
    fi
    echo "Full log: $(basename "$LOG")."
  } >"$REPORT"
}
trap write_report EXIT

# ---------------------------------------------------------------- environment
log "tensorkiln gpu-check in $ROOT, work dir $WORK, .gpu at $GPU_DIR"
if command -v nvidia-smi >/dev/null 2>&1; then
  GPU_NAME=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
  nvidia-smi >>"$LOG" 2>&1
else
  NOTES+=("nvidia-smi not found")
fi
[ "$EMU" = 1 ] && GPU_NAME="none: CPU emulation (TK_CUDA_EMU=1)"
log "GPU: $GPU_NAME"
{ nvcc --version; cmake --version; python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'; } >>"$LOG" 2>&1
if [ ! -f "$GPU_DIR/cases.txt" ]; then
  log "ERROR: $GPU_DIR/cases.txt missing: run 'npx tsx tools/export-reference.ts' where Node.js is, and carry .gpu"
  NOTES+=("no .gpu folder: nothing to build")
  BUILD_STATUS="skipped (no $GPU_DIR)"
  exit 1
fi

# ---------------------------------------------------------------- data
DATA=$WORK/data
mkdir -p "$DATA"
for f in "$GPU_DIR"/data/*; do
  [ -e "$f" ] || continue
  case "$f" in
    *.xz) python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$f" "$DATA/$(basename "${f%.xz}")" ||
            xz -dc "$f" >"$DATA/$(basename "${f%.xz}")" || log "cannot decompress $f" ;;
    *) cp "$f" "$DATA/" ;;
  esac
done
ls -la "$DATA" >>"$LOG" 2>&1

# ---------------------------------------------------------------- build
log "configure"
# Ninja where it is (the GPU image has it), else make; both keep going past a failed package
if command -v ninja >/dev/null 2>&1; then GEN=Ninja; KEEP_GOING=(-k 0); else GEN="Unix Makefiles"; KEEP_GOING=(-k); fi
CMAKE_ARGS=(-S "$ROOT/scripts/gpu" -B "$BUILD" -G "$GEN" -DCMAKE_BUILD_TYPE=Release "-DTK_GPU_DIR=$GPU_DIR")
if [ "$EMU" = 1 ]; then CMAKE_ARGS+=(-DTK_CUDA_EMU=ON); else CMAKE_ARGS+=("-DCMAKE_CUDA_ARCHITECTURES=$ARCHS"); fi
if run_logged 300 "$WORK/configure.txt" cmake "${CMAKE_ARGS[@]}"; then
  log "build ($GEN, -j$JOBS)"
  run_logged 900 "$WORK/build.txt" cmake --build "$BUILD" -j "$JOBS" -- "${KEEP_GOING[@]}"
  rc=$?
  built=0
  total=0
  for d in "$GPU_DIR"/pkg/*/; do
    p=$(basename "$d")
    total=$((total + 1))
    if [ -x "$BUILD/harness_$p" ]; then built=$((built + 1)); else NOTES+=("package $p did not build (see the log)"); fi
  done
  BUILD_STATUS="$built of $total packages built (cmake exit $rc)"
  grep -E "error" "$WORK/build.txt" | head -20 | while read -r l; do log "build: $l"; done
else
  BUILD_STATUS="cmake configure failed"
  tail -20 "$WORK/configure.txt" | while read -r l; do log "configure: $l"; done
fi
log "$BUILD_STATUS"

# ---------------------------------------------------------------- equivalence
NODEVICE=0
while read -r kase pkg; do
  [ -n "$kase" ] || continue
  h=$BUILD/harness_$pkg
  ref=$GPU_DIR/ref/$kase.safetensors
  if [ ! -x "$h" ]; then
    CASE_ROWS+=("| $kase | $pkg | | NOT BUILT | | | | |")
    continue
  fi
  run_logged "${TK_CASE_TIMEOUT:-300}" "$WORK/case.txt" "$h" check "$ref"
  rc=$?
  line=$(grep -E "^CASE " "$WORK/case.txt" | tail -1)
  if [ $rc -eq 3 ]; then
    NODEVICE=1
    msg=$(grep -E "^NODEVICE" "$WORK/case.txt" | head -1 | cut -d' ' -f2-)
    CASE_ROWS+=("| $kase | $pkg | | NO DEVICE: $msg | | | | |")
    continue
  fi
  if [ -n "$line" ]; then
    # CASE <case> <PASS|FAIL> checks=N failed=N worst=name:ratio source=S margin=M
    result=$(echo "$line" | awk '{print $3}')
    checks=$(echo "$line" | sed -n 's/.*checks=\([0-9]*\).*/\1/p')
    failed=$(echo "$line" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
    worst=$(echo "$line" | sed -n 's/.*worst=\([^ ]*\).*/\1/p')
    source=$(echo "$line" | sed -n 's/.*source=\([^ ]*\).*/\1/p')
    margin=$(echo "$line" | sed -n 's/.*margin=\([^ ]*\).*/\1/p')
    [ "$result" = FAIL ] && result="**FAIL**: $(grep -E ' FAIL ' "$WORK/case.txt" | grep -v '^CASE' | head -3 | awk '{print $3" ("$5")"}' | tr '\n' ' ')"
    CASE_ROWS+=("| $kase | $pkg | $source | $result | $checks | $failed | $worst | $margin |")
  else
    err=$(grep -E "^ERROR" "$WORK/case.txt" | head -1)
    CASE_ROWS+=("| $kase | $pkg | | **ERROR** (exit $rc) ${err:-$(tail -1 "$WORK/case.txt")} | | | | |")
  fi
  log "check $kase: ${line:-exit $rc}"
done <"$GPU_DIR/cases.txt"
[ $NODEVICE = 1 ] && NOTES+=("no CUDA device: the packages report it as an error (TK_ENODEV), as designed")

# ---------------------------------------------------------------- timings
bench_row() { # bench_row <file> <label> <model> <exit code>
  local line
  line=$(grep -E "^BENCH " "$1" | tail -1)
  if [ -z "$line" ]; then
    BENCH_ROWS+=("| $2 | $3 | | failed (exit ${4:-?}$([ "${4:-0}" = 124 ] || [ "${4:-0}" = 137 ] && echo ', timed out')): $(grep -E '^(ERROR|NODEVICE)' "$1" | head -1) | | | | |")
    return
  fi
  local get
  get() { echo "$line" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
  local e s
  e=$(get epochs)
  s=$(get train_s)
  BENCH_ROWS+=("| $2 | $3 | $e | $s | $(awk -v s="$s" -v e="$e" 'BEGIN{printf "%.3f", s*100/e}') | $(get img_per_s) | $(get loss_last) | $(get val_acc) |")
}

if [ "${TK_SKIP_BENCH:-0}" != 1 ] && [ $NODEVICE = 0 ]; then
  for spec in "Net tk_net" "NetResDeep tk_netresdeep"; do
    set -- $spec
    model=$1
    h=$BUILD/harness_$2
    [ -x "$h" ] || { NOTES+=("no harness for $model: no timing"); continue; }
    init=$GPU_DIR/ref/$model.momentum.safetensors  # initial weights: PyTorch's default init, from the TypeScript model
    log "bench $model: $EPOCHS epochs (CUDA graphs)"
    run_logged 600 "$WORK/bench.txt" "$h" bench "$DATA" "$init" "$EPOCHS" 64 0.01 1 "${TK_BENCH_LIMIT:-0}" "${TK_PROFILE_STEPS:-20}"
    bench_row "$WORK/bench.txt" "tensorkiln CUDA (graphs)" "$model" $?
    while read -r _ _ name a b _; do
      if [ "$name" = step_ms ]; then PROFILE_ROWS+=("| $model | **whole step** (uncaptured) | | $a |"); else PROFILE_ROWS+=("| $model | $name | $a | $b |"); fi
    done < <(grep -E "^PROFILE " "$WORK/bench.txt" | head -16)
    if [ "$model" = Net ]; then
      log "bench $model: $EPOCHS epochs (no graphs)"
      run_logged 600 "$WORK/bench.txt" "$h" bench "$DATA" "$init" "$EPOCHS" 64 0.01 0 "${TK_BENCH_LIMIT:-0}" 0
      bench_row "$WORK/bench.txt" "tensorkiln CUDA (no graphs)" "$model" $?
    fi
  done
fi

if [ "${TK_SKIP_TORCH:-0}" != 1 ] && [ "$EMU" != 1 ]; then
  log "PyTorch timings"
  PYTHONUNBUFFERED=1 run_logged 260 "$WORK/torch.txt" python3 "$ROOT/scripts/gpu/torch_bench.py" --data "$DATA" --epochs "$EPOCHS" --budget "${TK_TORCH_BUDGET:-150}"
  [ $? -ne 0 ] && NOTES+=("torch_bench.py exited with an error or timed out (see the log)")
  while read -r line; do
    get() { echo "$line" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
    TORCH_ROWS+=("| PyTorch $(get mode) | $(get model) | $(get epochs) | $(get train_s) | $(get per100_s) | $(get img_per_s) | $(get loss_last) | $(get val_acc) |")
  done < <(grep -E "^TORCH " "$WORK/torch.txt")
  grep -E "^NOTE " "$WORK/torch.txt" | while read -r l; do echo "$l" >>"$WORK/notes.txt"; done
  [ -f "$WORK/notes.txt" ] && while read -r l; do NOTES+=("${l#NOTE }"); done <"$WORK/notes.txt"
fi

# speed-ups: PyTorch eager time per 100 epochs / ours (graphs)
ratio() { # ratio <model>
  local ours theirs
  ours=$(printf '%s\n' "${BENCH_ROWS[@]}" | grep "(graphs) | $1 |" | awk -F'|' '{print $6}' | tr -d ' ')
  theirs=$(printf '%s\n' "${TORCH_ROWS[@]}" | grep "PyTorch eager | $1 |" | awk -F'|' '{print $6}' | tr -d ' ')
  if [ -n "$ours" ] && [ -n "$theirs" ]; then
    NOTES+=("$1: tensorkiln CUDA is $(awk -v a="$theirs" -v b="$ours" 'BEGIN{printf "%.1f", a/b}')x faster than PyTorch eager per 100 epochs ($ours s vs $theirs s)")
  fi
}
ratio Net
ratio NetResDeep
log "done"
exit 0
