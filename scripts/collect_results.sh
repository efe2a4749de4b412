#!/usr/bin/env bash
# Scores every system on the rendered corpus's test split and regenerates docs/RESULTS.md.
#   scripts/collect_results.sh CORPUS RUNS BASELINES REPORTS
# RUNS: output of scripts/train_default_model.sh; BASELINES: `jukesep baselines train` files.
set -euo pipefail
DATA=${1:?corpus}; RUNS=${2:?runs}; BASE=${3:?baselines}; REPORTS=${4:?reports}
HERE=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=$HERE/benchmarks/results
mkdir -p "$RESULTS/quality" "$RESULTS/curves" "$REPORTS"
BSS=${BSS:---no-bss}  # museval is slow on a 2-core CPU; set BSS= to include BSSEval v4

score() {  # name, then evaluate arguments
  local name=$1; shift
  jukesep evaluate "$@" --data "$DATA" --split test -o "$REPORTS/$name" $BSS
  cp "$REPORTS/$name/summary.json" "$RESULTS/quality/$name.json"
}
score irm --baseline irm
score mix4 --baseline mix4
for arm in transfer scratch default; do
  [ -f "$RUNS/$arm/separator.pt" ] && score "jukesep-$arm" --model "$RUNS/$arm/separator.pt"
done
for kind in openunmix demucs; do
  [ -f "$BASE/$kind.pt" ] && score "$kind" --baseline "$kind:$BASE/$kind.pt"
done
cp "$RUNS/foundation/val_history.json" "$RESULTS/curves/foundation.json"
for arm in transfer scratch; do
  for run in "$RUNS/$arm"/*/; do
    name=$(basename "$run")
    [ -f "$run/val_history.json" ] && cp "$run/val_history.json" "$RESULTS/curves/$arm-$name.json"
  done
done
python "$HERE/benchmarks/make_results.py"
