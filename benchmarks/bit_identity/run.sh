#!/bin/bash
# Bit-identity check of a behaviour-preserving change: six models on ml-100k, seed 2020, 2 epochs, one thread,
# from two checkouts; then compare the summaries (per-epoch loss terms, valid/test results, checkpoint hashes).
#   git worktree add --detach /tmp/wt-before <commit>
#   benchmarks/bit_identity/run.sh /tmp/bit/before /tmp/wt-before DATA_PATH
#   benchmarks/bit_identity/run.sh /tmp/bit/after "$PWD" DATA_PATH
#   diff /tmp/bit/before/summary.txt /tmp/bit/after/summary.txt && echo identical
# DATA_PATH: a folder holding ml-100k/ (a copy of dataset/ml-100k), shared by both runs so both read the same LLM tables.
set -u
OUT=$1; CHECKOUT=$2; DATA=$3
PY=${PYTHON:-python}
# DaRecSGL: the one head whose backbone redraws its views each epoch (the per-epoch hook)
MODELS=${MODELS:-DaRecLightGCN LightGCNBackbone RLMRecConLightGCN BPR SGLBackbone DaRecSGL}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=$CHECKOUT
HERE=$(cd "$(dirname "$0")" && pwd)
for m in $MODELS; do
  d=$OUT/$m; rm -rf "$d"; mkdir -p "$d"
  (cd "$d" && $PY "$CHECKOUT/run_recbole_darec.py" --model=$m --dataset=ml-100k --data_path="$DATA" --seed=2020 \
      --epochs=2 --show_progress=False --checkpoint_dir="$d/saved" > stdout.txt 2>&1)
  echo "$m exit $?"
done
$PY "$HERE/summarise.py" "$OUT" $MODELS > "$OUT/summary.txt"
