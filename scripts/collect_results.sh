#!/usr/bin/env bash
# Scores every system of scripts/train_default_model.sh on the corpus's test and held-out-timbre
# splits, chooses the refinement on the valid split, and regenerates docs/RESULTS.md.
#   scripts/collect_results.sh CORPUS RUNS REPORTS [PHASE...]
# Phases (default: refine baselines arms); for the wide-timbre round (its own QUALITY folder):
#   wide   mixture/4, IRM, and the default's recipe and Open-Unmix trained on the wide corpus (RUNS/wide)
#   e2e    the later arms on the end-to-end round's runs (RUNS/e2e: a wider shared encoder, the codes
#          loss, 180 min of stage 2) and its Open-Unmix (RUNS/e2e/openunmix.pt), into that round:
#          QUALITY=benchmarks/results/quality/e2e scripts/collect_results.sh CORPUS RUNS REPORTS e2e
#   avx2   the AVX2 pair (RUNS/avx2: stage 2's latent targets from the stage-1 encoders' inference form,
#          and the code before it), with mixture/4 and IRM, into their own round (QUALITY=.../avx2); with
#          QUALITY=.../e2e-near and NEAR, the near phase scores them on the near split
#   near   the held-out split of NEAR, a corpus of the same held-out songs rendered with sampled fonts that
#          the first corpus never uses (issue #12: unseen or alien timbres?), for the end-to-end and wide
#          rounds' systems and the shipped default:
#            jukesep corpus render NEAR --minutes 0 --seed 1 --song-seconds 30 --heldout-minutes 8 \
#              --heldout-fonts TimGM6mb.sf2,sf_GMbank.sf2
#            QUALITY=benchmarks/results/quality/e2e-near scripts/collect_results.sh NEAR RUNS REPORTS near
# A score whose summary exists is skipped (rerunning continues). $JOBS scores (default 2) run at
# once, one thread each. The refinement of the arms is the package's default
# (jukesep/defaults.py), which the refine phase is there to choose.
set -euo pipefail
DATA=${1:?corpus}; RUNS=${2:?runs}; REPORTS=${3:?reports}
shift 3
PHASES=${*:-refine baselines arms}
HERE=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=$HERE/benchmarks/results
QUALITY=${QUALITY:-$RESULTS/quality}  # an earlier round's folder: QUALITY=$RESULTS/quality/<round>
mkdir -p "$QUALITY" "$RESULTS/curves" "$REPORTS"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
SPLITS=${SPLITS:-test $( [ -d "$DATA/heldout" ] && echo heldout || true )}
DEFAULT=$RUNS/transfer/shared-latent-lr3/best.pt  # the previous default (phase default at 12/4/20 min): refinement chosen on it
ARMS=(  # system name = separator file
  "shared-output=$RUNS/transfer/shared-output-context/best.pt"
  "transfer-shared-short=$RUNS/transfer/shared-output/best.pt"
  "transfer-paper=$RUNS/transfer/paper/separator.pt"
  "transfer-per-stem-output=$RUNS/transfer/per-stem-output/separator.pt"
  "transfer-shared-latent=$RUNS/transfer/shared-latent/best.pt"
  "transfer-shared-both=$RUNS/transfer/shared-both/best.pt"
  "transfer-shared-long=$RUNS/transfer/shared-long/best.pt"
  "transfer-shared-latent-lr03=$RUNS/transfer/shared-latent-lr03/best.pt"
  "transfer-shared-latent-lr10=$RUNS/transfer/shared-latent-lr10/best.pt"
  "transfer-shared-latent-lr3-cosine=$RUNS/transfer/shared-latent-lr3-cosine/best.pt"
  "transfer-shared-latent-lr10-cosine=$RUNS/transfer/shared-latent-lr10-cosine/best.pt"
  "transfer-shared-latent-lr3-w16=$RUNS/transfer/shared-latent-lr3-w16/best.pt"
  "transfer-shared-latent-lr3-w64=$RUNS/transfer/shared-latent-lr3-w64/best.pt"
  "transfer-shared-latent-lr3-longer=$RUNS/transfer/shared-latent-lr3-longer/best.pt"
  "rebalanced-8-2-32=$RUNS/rebalance/transfer/shared-latent-lr3/best.pt"
  "tilted-4-1-40=$RUNS/tilt/transfer/shared-latent-lr3/best.pt"
  "tilted-4-1-40-w16=$RUNS/tilt/transfer/shared-latent-lr3-w16/best.pt"
  "e2e-control=$RUNS/e2e/transfer/shared-latent-lr3-w16-longer/best.pt"
  "e2e-control-100=$RUNS/e2e/transfer/shared-latent-lr3-w16-longer100/best.pt"
  "e2e-end-to-end=$RUNS/e2e/transfer/shared-latent-lr3-w16-e2e/best.pt"
  "tilted-4-1-40-w16-mask=$RUNS/tilt/transfer/shared-latent-lr3-w16-mask/best.pt"
  "tilted-4-1-40-w16-local-mask=$RUNS/tilt/transfer/shared-latent-lr3-w16-local-mask/best.pt"
  "tilted-4-1-40-w16-mask-eq=$RUNS/tilt/transfer/shared-latent-lr3-w16-mask-eq/best.pt"
  "scratch-shared-output=$RUNS/scratch/shared-output-context/best.pt"
  "scratch-shared-latent=$RUNS/scratch/shared-latent/best.pt"
)
E2E_ARMS=(  # on the end-to-end round's foundation and stage 1
  "e2e-trunk-w24=$RUNS/e2e/transfer/shared-latent-lr3-w16-trunk-w24/best.pt"
  "e2e-trunk-w32=$RUNS/e2e/transfer/shared-latent-lr3-w16-trunk-w32/best.pt"
  "e2e-codes-lr3=$RUNS/e2e/transfer/shared-codes-lr3-w16/best.pt"
  "e2e-codes-lr1=$RUNS/e2e/transfer/shared-codes-lr1-w16/best.pt"
  "e2e-control-180=$RUNS/e2e/transfer/shared-latent-lr3-w16-longer180/best.pt"
  "e2e-bf16=$RUNS/e2e/transfer/shared-latent-lr3-w16-bf16/best.pt"
)
AVX2=(  # the default's recipe on an AVX2-only CPU: stage 2 with the faster latent targets, and before them
  "avx2-control=$RUNS/avx2/transfer/shared-latent-lr3-w16-plain/best.pt"
  "avx2-fast-targets=$RUNS/avx2/transfer/shared-latent-lr3-w16/best.pt"
)
NEAR_ARMS=(  # systems trained on the first corpus (the shipped default: the package's) or on the wide one
  "e2e-shipped-default=default"
  "e2e-control=$RUNS/e2e/transfer/shared-latent-lr3-w16-longer/best.pt"
  "e2e-control-100=$RUNS/e2e/transfer/shared-latent-lr3-w16-longer100/best.pt"
  "e2e-control-180=$RUNS/e2e/transfer/shared-latent-lr3-w16-longer180/best.pt"
  "e2e-bf16=$RUNS/e2e/transfer/shared-latent-lr3-w16-bf16/best.pt"
  "wide-default=$RUNS/wide/transfer/shared-latent-lr3-w16/best.pt"
  "${AVX2[@]}"
)

score() {  # NAME SPLIT, then `jukesep evaluate` arguments
  local name=$1 split=$2; shift 2
  [ -f "$QUALITY/$name-$split.json" ] && return 0
  jukesep evaluate "$@" --data "$DATA" --split "$split" -o "$REPORTS/$name-$split" --no-bss > /dev/null
  cp "$REPORTS/$name-$split/summary.json" "$QUALITY/$name-$split.json"
}
# A run's best.pt appears at its first validation: score it only once the run has stopped (last.pt);
# a per-stem arm's separator.pt is bundled only from finished encoders.
finished() {  # a shipped model's name counts as finished
  [[ $1 != */* ]] || { [ -f "$1" ] && { [ -f "$(dirname "$1")/last.pt" ] || [ "$(basename "$1")" = separator.pt ]; }; }
}
PIDS=()
JOBS=${JOBS:-2}
later() { "$@" & PIDS+=($!); [ ${#PIDS[@]} -lt "$JOBS" ] || settle; }  # at most JOBS at once
settle() { for pid in "${PIDS[@]}"; do wait "$pid"; done; PIDS=(); }  # fails if one failed
score_finished() {  # SPLIT NAME=SEPARATOR...: each whose run has finished
  local split=$1 arm; shift
  for arm in "$@"; do
    if finished "${arm#*=}"; then later score "${arm%%=*}" "$split" --model "${arm#*=}"; fi
  done
}
floors() { later score irm "$1" --baseline irm; later score mix4 "$1" --baseline mix4; }  # SPLIT
peer() {  # NAME SPLIT OPEN-UNMIX-FILE: once its training has finished (the file appears at its end)
  if [ -f "$3" ]; then later score "$1" "$2" --baseline "openunmix:$3"; fi
}

for phase in $PHASES; do
  case $phase in
    refine)  # chosen on the valid split, never on test
      for mode in none softmask wiener; do later score "refine-$mode" valid --model "$DEFAULT" --refine "$mode"; done ;;
    baselines)
      for split in $SPLITS; do
        floors "$split"
        later score openunmix "$split" --baseline "openunmix:$RUNS/openunmix.pt"
      done ;;
    arms)
      for split in $SPLITS; do
        later score transfer-shared-latent-lr3 "$split" --model "$DEFAULT"
        later score transfer-shared-latent-lr3-unrefined "$split" --model "$DEFAULT" --refine none
        score_finished "$split" "${ARMS[@]}"
      done ;;
    wide)
      for split in $SPLITS; do
        floors "$split"
        later score wide-openunmix "$split" --baseline "openunmix:$RUNS/wide/openunmix.pt"
        later score wide-default "$split" --model "$RUNS/wide/transfer/shared-latent-lr3-w16/best.pt"
      done ;;
    e2e)
      for split in $SPLITS; do
        score_finished "$split" "${E2E_ARMS[@]}"
        peer openunmix "$split" "$RUNS/e2e/openunmix.pt"
      done ;;
    avx2)
      for split in $SPLITS; do
        floors "$split"
        score_finished "$split" "${AVX2[@]}"
      done ;;
    near)
      floors heldout
      score_finished heldout "${NEAR_ARMS[@]}"
      peer openunmix heldout "$RUNS/e2e/openunmix.pt"
      peer wide-openunmix heldout "$RUNS/wide/openunmix.pt" ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
settle
for run in "$RUNS"/foundation "$RUNS"/*/vqvae-* "$RUNS"/*/shared-* "$RUNS"/*/*/encoder-* \
           "$RUNS"/{rebalance,tilt,e2e,wide,avx2}/foundation "$RUNS"/{rebalance,tilt,e2e,wide,avx2}/*/vqvae-* \
           "$RUNS"/{rebalance,tilt,e2e,wide,avx2}/*/shared-*; do
  [ -f "$run/val_history.json" ] || continue
  name=${run#"$RUNS"/}
  cp "$run/val_history.json" "$RESULTS/curves/${name//\//-}.json"
done
python3 "$HERE/benchmarks/make_results.py"
