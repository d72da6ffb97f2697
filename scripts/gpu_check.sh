#!/usr/bin/env bash
# The one command to run when a CUDA GPU is at hand (issue 29). In order:
#   1. parity: the gsplat backend through gsplat's pure-PyTorch stages on the CPU, then every
#      GPU test (pytest -m gpu: gsplat's CUDA kernels against the CPU backend, SAM on CUDA);
#   2. bench/bench_render.py: speed and memory of every render backend (gsplat included);
#   3. a 30k-iteration training of built-in scene seed 0 on the GPU, its time and held-out mIoU
#      (bench/bench_scenes.py, against the per-view masks);
#   4. the main job on the GPU (what scripts/run.sh runs, timed and scored: bench/bench_main_job.py).
# Each step's log and figures go to RESULTS (default bench/results): gpu_check.md (the summary,
# one row per step), gpu_check_render.md, gpu_check_train.md/.json, gpu_check_main_job.md/.json,
# gpu_check_*.log. A failing step is recorded and the next one still runs; the exit status is 1
# if any step failed.
#
#   scripts/gpu_check.sh [--cpu-dry-run] [--results DIR] [--work DIR] [--iterations N] [--seed S]
#                        [--skip-setup]
#
# --cpu-dry-run: what runs without a GPU (CI runs it): step 1's CPU part; the GPU steps are listed
# with their commands, not run. Writes RESULTS/gpu_check_cpu_dry_run.md instead of gpu_check.md.
# Without it, the script refuses to start where torch sees no CUDA device. --skip-setup: do not
# run scripts/setup.sh first (the tests' way; VENV names the virtualenv, default .venv).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dry=0
setup=1
RESULTS=$ROOT/bench/results
WORK=$ROOT/bench/out/gpu_check
ITERATIONS=30000
SEED=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) dry=1 ;;
    --results) RESULTS=$2; shift ;;
    --work) WORK=$2; shift ;;
    --iterations) ITERATIONS=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --skip-setup) setup=0 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$setup" -eq 1 ]; then "$ROOT/scripts/setup.sh"; fi
if [ "$dry" -eq 0 ]; then
  # shellcheck source=/dev/null
  source "$ROOT/scripts/ros_env.sh"  # the main job's bench starts the ROS 2 node
fi
cd "$ROOT"
PY="${VENV:-$ROOT/.venv}/bin/python"
mkdir -p "$RESULTS"; [ "$dry" -eq 1 ] || mkdir -p "$WORK"
RESULTS=$(cd "$RESULTS" && pwd)

if [ "$dry" -eq 0 ] && ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check.sh: torch sees no CUDA device here; run with --cpu-dry-run for the CPU part" >&2
  exit 2
fi
device=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')")
summary=$RESULTS/gpu_check.md
[ "$dry" -eq 1 ] && summary=$RESULTS/gpu_check_cpu_dry_run.md
rows=()
failed=0

# step NAME LOG FIGURES -- COMMAND...: runs COMMAND, its output into RESULTS/LOG, one summary row.
step() {
  local name=$1 log=$2 figures=$3; shift 4
  local start end status
  echo "== $name: $*"
  start=$(date +%s)
  if "$@" >"$RESULTS/$log" 2>&1; then status=pass; else status=FAIL; failed=1; fi
  end=$(date +%s)
  echo "   $status in $((end - start)) s (log: $RESULTS/$log)"
  rows+=("| $name | $status | $((end - start)) | \`$*\` | $figures, \`$log\` |")
}

# not_run NAME -- COMMAND...: a GPU step in a dry run: listed, not run.
not_run() {
  local name=$1; shift 2
  rows+=("| $name | not run (no GPU) | - | \`$*\` | - |")
}

step "parity: gsplat's torch stages on the CPU, SAM devices" gpu_check_parity_cpu.log \
  "pytest summary in the log" -- \
  "$PY" -m pytest -q -p no:cacheprovider tests/core/render/test_gsplat_torch_stages.py \
  tests/core/segment/test_segment_sam.py

gpu_steps=(
  "parity: CUDA (pytest -m gpu)|gpu_check_parity_cuda.log|pytest summary in the log|$PY -m pytest -q -rs -p no:cacheprovider -m gpu tests"
  "render backends|gpu_check_render.log|\`gpu_check_render.md\`|$PY bench/bench_render.py --out $RESULTS/gpu_check_render.md"
  "training $ITERATIONS iterations, scene seed $SEED|gpu_check_train.log|\`gpu_check_train.md/.json\` (mIoU, train seconds)|$PY bench/bench_scenes.py --seeds $SEED --iterations $ITERATIONS --set train.device=cuda --label gpu_check_train --work $WORK --results $RESULTS"
  "main job (scripts/run.sh's job)|gpu_check_main_job.log|\`gpu_check_main_job.md/.json\`|$PY bench/bench_main_job.py --out $RESULTS/gpu_check_main_job"
)
for entry in "${gpu_steps[@]}"; do
  IFS='|' read -r name log figures command <<<"$entry"
  read -r -a argv <<<"$command"
  if [ "$dry" -eq 1 ]; then not_run "$name" -- "${argv[@]}"; else step "$name" "$log" "$figures" -- "${argv[@]}"; fi
done

# Headline figures of step 3 into the summary (when it ran).
headline=""
if [ -f "$RESULTS/gpu_check_train.json" ] && [ "$dry" -eq 0 ]; then
  headline=$("$PY" - "$RESULTS/gpu_check_train.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
rows = data.get("scenes", [])
for row in rows:
    print(f"- training seed {row.get('seed')}: mIoU {row.get('mIoU', float('nan')):.1f}, "
          f"{row.get('iterations')} iterations in {row.get('train_seconds', float('nan')):.0f} s")
EOF
) || headline="- (could not read gpu_check_train.json)"
fi

{
  echo "# GPU check (scripts/gpu_check.sh)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: GPU $device; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- command: \`scripts/gpu_check.sh$([ "$dry" -eq 1 ] && echo ' --cpu-dry-run') --iterations $ITERATIONS --seed $SEED\`"
  echo
  echo "| step | status | seconds | command | figures / log |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  if [ -n "$headline" ]; then echo; echo "$headline"; fi
} >"$summary"
cat "$summary"
exit "$failed"
