#!/usr/bin/env bash
# Trains jukesep's default model and the transfer-vs-scratch comparison with the project's own
# commands (issue: ship a trained default model). CPU-sized: see docs/RESULTS.md for what was run.
#   scripts/train_default_model.sh CORPUS RUNS
# The two arms run side by side, one thread each (a 2-core machine); rerunning resumes.
set -euo pipefail
DATA=${1:?corpus folder (jukesep corpus render ...)}
RUNS=${2:?output folder}
SIZE="--width 16 --depth 6 --emb-width 32 --codebook-size 512"
TRAIN="--preset small --excerpt 16384 --batch-size 4 --lr 1e-3 --linf-k 512 --workers 1 --val-every 100 --ckpt-every 100 --val-excerpts 2"
FOUNDATION_STEPS=${FOUNDATION_STEPS:-2000}
STAGE_STEPS=${STAGE_STEPS:-800}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

resume() { [ -f "$1/train_state.pt" ] && echo --resume || true; }

transfer() {
  jukesep train foundation --data "$DATA" --out "$RUNS/foundation" --steps "$FOUNDATION_STEPS" $SIZE $TRAIN \
    $(resume "$RUNS/foundation")
  jukesep train all --data "$DATA" --init "foundation:$RUNS/foundation/best.pt" --out "$RUNS/transfer" \
    --steps "$STAGE_STEPS" $TRAIN
}
# Same stages, same budget per stage, initialised at random.
scratch() {
  jukesep train all --data "$DATA" --init scratch --out "$RUNS/scratch" --steps "$STAGE_STEPS" $SIZE $TRAIN
}
# The shipped model: the transfer arm with its stage-2 encoders trained on (stage 2 is the bottleneck).
longer_encoders() {
  for stem in "$@"; do
    jukesep train encoder --resume --out "$RUNS/default/encoder-$stem" --steps "$DEFAULT_ENCODER_STEPS"
  done
}
DEFAULT_ENCODER_STEPS=${DEFAULT_ENCODER_STEPS:-2400}
mkdir -p "$RUNS"
transfer > "$RUNS/transfer.log" 2>&1 &
scratch > "$RUNS/scratch.log" 2>&1 &
wait
[ -d "$RUNS/default" ] || { cp -r "$RUNS/transfer" "$RUNS/default"; rm -f "$RUNS/default/separator.pt"; }
longer_encoders vocals other > "$RUNS/default-1.log" 2>&1 &
longer_encoders drums bass > "$RUNS/default-2.log" 2>&1 &
wait
jukesep bundle "$RUNS/default/separator.pt" --run "$RUNS/default"
