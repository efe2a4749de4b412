#!/usr/bin/env bash
# Scores every system of scripts/train_default_model.sh on the corpus's test and held-out-timbre
# splits, chooses the refinement on the valid split, and regenerates docs/RESULTS.md.
#   scripts/collect_results.sh CORPUS RUNS REPORTS [PHASE...]
# Phases (default: all): refine baselines arms
# Each score is skipped when its summary exists (rerunning continues). Two scores run at once
# (one thread each) on a 2-core machine.
set -euo pipefail
DATA=${1:?corpus}; RUNS=${2:?runs}; REPORTS=${3:?reports}
shift 3
PHASES=${*:-refine baselines arms}
HERE=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=$HERE/benchmarks/results
mkdir -p "$RESULTS/quality" "$RESULTS/curves" "$REPORTS"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
SPLITS=${SPLITS:-test heldout}

score() {  # NAME SPLIT, then `jukesep evaluate` arguments
  local name=$1 split=$2; shift 2
  [ -f "$RESULTS/quality/$name-$split.json" ] && return 0
  jukesep evaluate "$@" --data "$DATA" --split "$split" -o "$REPORTS/$name-$split" --no-bss > /dev/null
  cp "$REPORTS/$name-$split/summary.json" "$RESULTS/quality/$name-$split.json"
}
DEFAULT=$RUNS/transfer/shared-output/best.pt
for phase in $PHASES; do
  case $phase in
    refine)  # the refinement is chosen on the valid split (never on test)
      score refine-none valid --model "$DEFAULT" --refine none &
      score refine-softmask valid --model "$DEFAULT" --refine softmask &
      wait
      score refine-wiener valid --model "$DEFAULT" --refine wiener ;;
    baselines)
      for split in $SPLITS; do
        score irm "$split" --baseline irm
        score mix4 "$split" --baseline mix4
        score openunmix "$split" --baseline "openunmix:$RUNS/openunmix.pt"
      done ;;
    arms)  # every arm with the default refinement, and the default without it
      REFINE=$(python3 -c "import jukesep.refine as r; print(r.DEFAULT_REFINE)")
      for split in $SPLITS; do
        score shared-output "$split" --model "$DEFAULT" --refine "$REFINE" &
        score shared-output-unrefined "$split" --model "$DEFAULT" --refine none &
        wait
        for arm in transfer/paper transfer/per-stem-output transfer/shared-latent transfer/shared-both \
                   scratch/shared-output; do
          file=$RUNS/$arm/separator.pt
          [ -f "$file" ] || file=$RUNS/$arm/best.pt
          [ -f "$file" ] || continue
          score "${arm//\//-}" "$split" --model "$file" --refine "$REFINE" &
          [ "$(jobs -r | wc -l)" -ge 2 ] && wait -n
        done
        wait
      done ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
for run in "$RUNS"/foundation "$RUNS"/*/vqvae-* "$RUNS"/*/shared-* "$RUNS"/*/*/encoder-*; do
  [ -f "$run/val_history.json" ] || continue
  name=${run#"$RUNS"/}
  cp "$run/val_history.json" "$RESULTS/curves/${name//\//-}.json"
done
python "$HERE/benchmarks/make_results.py"
