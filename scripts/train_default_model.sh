#!/usr/bin/env bash
# Trains jukesep's default model and the stage-2 ablation, with the project's own commands
# (issue #12). CPU-sized for a 2-core machine: two runs side by side, one thread each. Every run
# is resumable: rerunning this script continues each one where it stopped, for the wall time it
# has left (a finished run is skipped), so it may be spread over several sessions.
#   scripts/train_default_model.sh CORPUS RUNS [PHASE...]
# Phases (default: all, in this order; run two invocations side by side to use two cores):
#   foundation       foundation VQ-VAE on all audio
#   stage1           stage 1: one VQ-VAE per stem, from the foundation
#   default          stage 2, shared encoder + latent loss, long-reach heads, lr 3e-3: the shipped design
#   shared-output    the previous default: the same with the output loss, lr 1e-3
#   peers            Open-Unmix for the same wall time as foundation + stage 1 + stage 2
#   paper            stage 2 as in the paper: an encoder per stem, latent loss (same wall time)
#   per-stem-output  an encoder per stem, output loss
#   shared-latent    shared encoder, latent loss
#   shared-short     shared-output with short-reach heads (4 blocks, dilations 2^i: 17 latent frames)
#   shared-both      shared encoder, latent + output loss
#   shared-latent-lr10, -lr03   shared-latent at learning rate 1e-2 and 3e-4 (1e-3 elsewhere; 3e-3: default)
#   default-cosine   the default with the learning rate decayed to 0 on a cosine over its 20 minutes
#   lr10-cosine      the same from a peak of 1e-2
#   heads-w16, heads-w64   the default with heads 16 and 64 channels wide (32): the size curve
#   trunk-w24, trunk-w32   heads-w16 with its shared encoder widened from the foundation's 16 channels
#                    (--trunk-width; beyond the paper)
#   codes-lr3, codes-lr1   heads-w16 trained with the codes loss (cross-entropy of the clean stems'
#                    stage-1 codes; beyond the paper) at learning rate 3e-3 and 1e-3
#   bf16             heads-w16 trained under bfloat16 autocast (--bf16; native on a CPU with avx512_bf16 or AMX)
#   default-longer   a copy of the default's run, continued for another $STAGE2_MIN minutes
#   heads-w16-longer the same for the heads-w16 run
#   heads-w16-longer100  a copy of heads-w16-longer continued for another $CONTROL_MIN minutes (the
#                    learned-mask arms' equal-time control)
#   heads-w16-longer180  a copy of heads-w16-longer100 continued for another $EXTRA_MIN minutes (a third
#                    point of the stage-2 time curve)
#   end-to-end       from the heads-w16 run's separator, $STAGE2_MIN more minutes with the output loss
#                    training the stems' decoders too (--stage2-decoders train; beyond the paper)
#   mask             from the heads-w16 run's separator: a learned mask over the mixture's STFT for
#                    $MASK_MIN minutes (beyond the paper; the separator is frozen, its stems of the
#                    training songs are computed once first, which --minutes does not count)
#   mask-local       the same with one rule shared by all bins (--mask-reach 3, 32 wide), $MASK_LOCAL_MIN
#                    minutes; it reuses the mask phase's stems of the training songs when that ran first
#   mask-eq          the mask phase with a random EQ of ±$MASK_EQ_DB dB per stem (timbre augmentation),
#                    $MASK_MIN minutes; it reuses the mask phase's stems too
#   shared-long      shared-output trained on excerpts 4x longer (1.5 s, batch 1): the heads' reach inside them
#   scratch          the output-loss design without transfer: stage 1 and 2 from random weights
#   scratch-latent   the default without transfer (stage 1 shared with the scratch phase)
# The same 48 min split differently (more of it for stage 2) is this script with other budgets:
#   rebalanced arm (the default before):
#     FOUNDATION_MIN=8 STAGE1_MIN=2 STAGE2_MIN=32 scripts/train_default_model.sh CORPUS RUNS/rebalance \
#       foundation stage1 default
#   tilted arms (the shipped default is its heads-w16 run; the two stage-2 runs side by side):
#     FOUNDATION_MIN=4 STAGE1_MIN=1 STAGE2_MIN=40 scripts/train_default_model.sh CORPUS RUNS/tilt \
#       foundation stage1 default heads-w16
#   end-to-end arm against the same 48 min spent as the shipped default's (4 + 4 x 1 + 40), side by side:
#     FOUNDATION_MIN=4 STAGE1_MIN=1 STAGE2_MIN=20 scripts/train_default_model.sh CORPUS RUNS/e2e \
#       foundation stage1 heads-w16
#     then the two at once: ... RUNS/e2e heads-w16-longer & ... RUNS/e2e end-to-end
#   the learned-mask arms' control: that heads-w16-longer run, 60 more minutes, alone, two threads:
#     OMP_NUM_THREADS=2 STAGE2_MIN=20 CONTROL_MIN=60 scripts/train_default_model.sh CORPUS RUNS/e2e heads-w16-longer100
#   bfloat16 autocast against e2e-control's 40 min of stage 2 (beside heads-w16-longer180, one thread each):
#     STAGE2_MIN=40 scripts/train_default_model.sh CORPUS RUNS/e2e bf16
#   the AVX2 pair (stage 2's latent targets from the stage-1 encoders' inference form, against the code
#   before it, commit a2029b7), on a CPU without avx512: the default's recipe, then its stage 2 twice, side
#   by side, one thread each: this code's, and a2029b7's with heads-w16's flags into ...-w16-plain:
#     FOUNDATION_MIN=4 STAGE1_MIN=1 scripts/train_default_model.sh CORPUS RUNS/avx2 foundation stage1
#     STAGE2_MIN=40 scripts/train_default_model.sh CORPUS RUNS/avx2 heads-w16 &
#     cd A2029B7-CHECKOUT && OMP_NUM_THREADS=1 python -m jukesep train shared --data CORPUS \
#       --vqvae RUNS/avx2/transfer --init foundation:RUNS/avx2/foundation/best.pt --stage2-loss latent $TRAIN \
#       $HEADS --lr 3e-3 --head-width 16 --minutes 40 --out RUNS/avx2/transfer/shared-latent-lr3-w16-plain
#   the stage-2 time curve's third point: that run, 80 more minutes, one thread (the other core scored):
#     STAGE2_MIN=20 CONTROL_MIN=60 EXTRA_MIN=80 scripts/train_default_model.sh CORPUS RUNS/e2e heads-w16-longer180
#   the learned mask on the shipped default (the tilted arms' heads-w16 run), alone, two threads:
#     OMP_NUM_THREADS=2 MASK_MIN=40 scripts/train_default_model.sh CORPUS RUNS/tilt mask
#     OMP_NUM_THREADS=2 MASK_LOCAL_MIN=25 scripts/train_default_model.sh CORPUS RUNS/tilt mask-local
#     OMP_NUM_THREADS=2 MASK_MIN=40 scripts/train_default_model.sh CORPUS RUNS/tilt mask-eq
#   the wide-timbre round (issue #12's data item): the shipped default's recipe and Open-Unmix, side by side,
#   48 min each, on the first corpus's training songs plus 384 more rendered with every GM font Debian packs
#   (apt install timgm6mb-soundfont csound-soundfont musescore-general-soundfont: 4 melodic fonts, not 2);
#   valid, test and held-out stay the first corpus's (symbolic links), so the scores compare with every arm:
#     jukesep corpus render CORPUS2 --minutes 240 --seed 2 --song-seconds 30 -j 2
#     mkdir -p WIDE/train && ln -s "$(realpath CORPUS)"/{valid,test,heldout} WIDE/ \
#       && ln -s "$(realpath CORPUS)"/train/* "$(realpath CORPUS2)"/train/* WIDE/train/
#     FOUNDATION_MIN=4 STAGE1_MIN=1 STAGE2_MIN=40 scripts/train_default_model.sh WIDE RUNS/wide \
#       foundation stage1 heads-w16 &
#     FOUNDATION_MIN=4 STAGE1_MIN=1 STAGE2_MIN=40 scripts/train_default_model.sh WIDE RUNS/wide peers
set -euo pipefail
DATA=${1:?corpus folder (jukesep corpus render ...)}
RUNS=${2:?output folder}
shift 2
PHASES=${*:-foundation stage1 default peers scratch-latent shared-output paper per-stem-output shared-short shared-latent \
  shared-latent-lr10 shared-both shared-long scratch default-cosine lr10-cosine heads-w16 heads-w64 default-longer}
SIZE="--width 16 --depth 6 --emb-width 32 --codebook-size 512"
TRAIN="--preset small --excerpt 16384 --batch-size 4 --lr 1e-3 --linf-k 512 --workers 1 --val-every 100 --ckpt-every 100 --val-excerpts 2 --steps 100000"
FOUNDATION_MIN=${FOUNDATION_MIN:-12}  # wall-time budgets in minutes, one thread each
STAGE1_MIN=${STAGE1_MIN:-4}           # per stem
STAGE2_MIN=${STAGE2_MIN:-20}          # all four stems together
PEER_MIN=${PEER_MIN:-$((FOUNDATION_MIN + 4 * STAGE1_MIN + STAGE2_MIN))}
STEMS="vocals drums bass other"
HEADS="--head-depth 8 --head-growth 3"  # reach: 3,282 latent frames (0.6 s) each side
SHORT="--head-depth 4 --head-growth 2"  # reach: 17 latent frames (3 ms)
LONG="--excerpt 65536 --batch-size 1"  # as many samples per step as $TRAIN's, in one excerpt
MASK="--excerpt 131072 --batch-size 16 --lr 1e-3 --lr-decay cosine --workers 1 --val-every 500 --ckpt-every 500 \
  --val-excerpts 2 --log-every 20"
MASK_MIN=${MASK_MIN:-40}
MASK_LOCAL="--mask-reach 3 --mask-hidden 32 --mask-layers 2 --excerpt 131072 --batch-size 4 --lr 3e-3 \
  --lr-decay cosine --workers 1 --val-every 400 --ckpt-every 400 --val-excerpts 2 --log-every 20"
MASK_LOCAL_MIN=${MASK_LOCAL_MIN:-25}
MASK_EQ_DB=${MASK_EQ_DB:-12}
CONTROL_MIN=${CONTROL_MIN:-60}
EXTRA_MIN=${EXTRA_MIN:-80}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# Runs `jukesep train STAGE ... --out OUT` for MINUTES of wall time in all, resuming when OUT
# holds a run (for the minutes it has left, read from OUT/val_history.json, which is saved at
# every validation); a run that already has last.pt is done.
run() {
  local minutes=$1 out=$2; shift 2
  [ -f "$out/last.pt" ] && return 0
  if [ -f "$out/train_state.pt" ]; then
    local left
    left=$(python3 -c "import json,os,sys; f=sys.argv[1]; h=json.load(open(f)) if os.path.exists(f) else []
print(max(0.1, $minutes - (h[-1]['minutes'] if h else 0)))" "$out/val_history.json")
    jukesep train "$1" --resume --out "$out" --minutes "$left"
  else
    jukesep train "$@" --out "$out" --minutes "$minutes"
  fi
}

# A phase starts from finished runs only (best.pt appears at the first validation, long before).
need() {
  for run in "$@"; do
    [ -f "$run/last.pt" ] || { echo "$run is not finished: run its phase first" >&2; exit 1; }
  done
}
stage1_runs() { for stem in $STEMS; do echo "$RUNS/$1/vqvae-$stem"; done; }

reuse_stems() {  # RUN: hard links to the mask phase's stems of the training songs, if it ran first
  local mask=$RUNS/transfer/shared-latent-lr3-w16-mask
  if [ -d "$mask/stems" ] && [ ! -d "$1/stems" ]; then
    mkdir -p "$1" && cp -al "$mask/stems" "$1/stems" && cp "$mask/stems.json" "$1/stems.json"
  fi
}
peer() {  # OUT: Open-Unmix for $PEER_MIN minutes in all; a stopped run resumes from OUT.train_state.pt
  [ -f "$1" ] && return 0
  local minutes=$PEER_MIN resume=()
  if [ -f "$1.train_state.pt" ]; then
    minutes=$(python3 -c "import sys, torch
print(max(0.1, $PEER_MIN - torch.load(sys.argv[1], weights_only=True)['minutes']))" "$1.train_state.pt")
    resume=(--resume)
  fi
  jukesep baselines train openunmix --data "$DATA" --out "$1" --steps 1000000 --minutes "$minutes" \
    --config '{"hidden": 128}' "${resume[@]}"
}
foundation() { run "$FOUNDATION_MIN" "$RUNS/foundation" foundation --data "$DATA" $SIZE $TRAIN; }
stage1() {  # ARM INIT [SIZE: the architecture, for a scratch init]
  [ "$2" = scratch ] || need "$RUNS/foundation"
  for stem in $STEMS; do
    run "$STAGE1_MIN" "$RUNS/$1/vqvae-$stem" vqvae --stem "$stem" --data "$DATA" --init "$2" ${3:-} $TRAIN
  done
}
shared() {  # ARM NAME INIT LOSS [HEAD FLAGS]
  need $(stage1_runs "$1")
  run "$STAGE2_MIN" "$RUNS/$1/$2" shared --data "$DATA" --vqvae "$RUNS/$1" --init "$3" --stage2-loss "$4" $TRAIN ${5:-}
}
per_stem() {  # ARM NAME LOSS: one encoder per stem, a quarter of the stage-2 time each
  need $(stage1_runs "$1")
  for stem in $STEMS; do
    run "$(python3 -c "print($STAGE2_MIN / 4)")" "$RUNS/$1/$2/encoder-$stem" encoder --stem "$stem" --data "$DATA" \
      --vqvae "$RUNS/$1/vqvae-$stem/best.pt" --init "foundation:$RUNS/foundation/best.pt" --stage2-loss "$3" $TRAIN
  done
  [ -f "$RUNS/$1/$2/separator.pt" ] || jukesep bundle "$RUNS/$1/$2/separator.pt" \
    $(for stem in $STEMS; do echo --stem "$stem=$RUNS/$1/vqvae-$stem/best.pt,$RUNS/$1/$2/encoder-$stem/best.pt"; done)
}
# FROM [TO MINUTES]: a copy (TO, default FROM-longer) of the finished stage-2 run FROM, trained to
# MINUTES in all (default: another $STAGE2_MIN minutes)
longer() {
  need "$RUNS/transfer/$1"
  local copy=$RUNS/transfer/${2:-$1-longer}
  [ -d "$copy" ] || { cp -r "$RUNS/transfer/$1" "$copy" && rm "$copy/last.pt"; }
  run "${3:-$((2 * STAGE2_MIN))}" "$copy" shared
}
mkdir -p "$RUNS"
for phase in $PHASES; do
  case $phase in
    foundation) foundation ;;
    stage1) stage1 transfer "foundation:$RUNS/foundation/best.pt" ;;
    default) shared transfer shared-latent-lr3 "foundation:$RUNS/foundation/best.pt" latent "$HEADS --lr 3e-3" ;;
    shared-output) shared transfer shared-output-context "foundation:$RUNS/foundation/best.pt" output "$HEADS" ;;
    peers) peer "$RUNS/openunmix.pt" ;;
    paper) per_stem transfer paper latent ;;
    per-stem-output) per_stem transfer per-stem-output output ;;
    shared-short) shared transfer shared-output "foundation:$RUNS/foundation/best.pt" output "$SHORT" ;;
    shared-latent) shared transfer shared-latent "foundation:$RUNS/foundation/best.pt" latent "$HEADS" ;;
    shared-both) shared transfer shared-both "foundation:$RUNS/foundation/best.pt" both "$HEADS" ;;
    shared-latent-lr03) shared transfer shared-latent-lr03 "foundation:$RUNS/foundation/best.pt" latent "$HEADS --lr 3e-4" ;;
    shared-latent-lr10) shared transfer shared-latent-lr10 "foundation:$RUNS/foundation/best.pt" latent "$HEADS --lr 1e-2" ;;
    default-cosine) shared transfer shared-latent-lr3-cosine "foundation:$RUNS/foundation/best.pt" latent \
                      "$HEADS --lr 3e-3 --lr-decay cosine" ;;
    heads-w16) shared transfer shared-latent-lr3-w16 "foundation:$RUNS/foundation/best.pt" latent \
                 "$HEADS --lr 3e-3 --head-width 16" ;;
    trunk-w24|trunk-w32) shared transfer "shared-latent-lr3-w16-$phase" "foundation:$RUNS/foundation/best.pt" latent \
                 "$HEADS --lr 3e-3 --head-width 16 --trunk-width ${phase#trunk-w}" ;;
    codes-lr3|codes-lr1) shared transfer "shared-$phase-w16" "foundation:$RUNS/foundation/best.pt" codes \
                 "$HEADS --lr ${phase#codes-lr}e-3 --head-width 16" ;;
    bf16) shared transfer shared-latent-lr3-w16-bf16 "foundation:$RUNS/foundation/best.pt" latent \
            "$HEADS --lr 3e-3 --head-width 16 --bf16" ;;
    heads-w64) shared transfer shared-latent-lr3-w64 "foundation:$RUNS/foundation/best.pt" latent \
                 "$HEADS --lr 3e-3 --head-width 64" ;;
    default-longer) longer shared-latent-lr3 ;;
    heads-w16-longer) longer shared-latent-lr3-w16 ;;
    heads-w16-longer100) longer shared-latent-lr3-w16-longer shared-latent-lr3-w16-longer100 \
                           $((2 * STAGE2_MIN + CONTROL_MIN)) ;;
    heads-w16-longer180) longer shared-latent-lr3-w16-longer100 shared-latent-lr3-w16-longer180 \
                           $((2 * STAGE2_MIN + CONTROL_MIN + EXTRA_MIN)) ;;
    end-to-end)
      need "$RUNS/transfer/shared-latent-lr3-w16"
      run "$STAGE2_MIN" "$RUNS/transfer/shared-latent-lr3-w16-e2e" shared --data "$DATA" \
        --init "separator:$RUNS/transfer/shared-latent-lr3-w16/best.pt" --stage2-loss output \
        --stage2-decoders train $TRAIN --lr 3e-4 ;;
    mask)
      need "$RUNS/transfer/shared-latent-lr3-w16"
      run "$MASK_MIN" "$RUNS/transfer/shared-latent-lr3-w16-mask" mask --data "$DATA" \
        --init "separator:$RUNS/transfer/shared-latent-lr3-w16/best.pt" $MASK ;;
    mask-local)
      need "$RUNS/transfer/shared-latent-lr3-w16"
      reuse_stems "$RUNS/transfer/shared-latent-lr3-w16-local-mask"
      run "$MASK_LOCAL_MIN" "$RUNS/transfer/shared-latent-lr3-w16-local-mask" mask --data "$DATA" \
        --init "separator:$RUNS/transfer/shared-latent-lr3-w16/best.pt" $MASK_LOCAL ;;
    mask-eq)
      need "$RUNS/transfer/shared-latent-lr3-w16"
      reuse_stems "$RUNS/transfer/shared-latent-lr3-w16-mask-eq"
      run "$MASK_MIN" "$RUNS/transfer/shared-latent-lr3-w16-mask-eq" mask --data "$DATA" \
        --init "separator:$RUNS/transfer/shared-latent-lr3-w16/best.pt" $MASK --mask-eq "$MASK_EQ_DB" ;;
    lr10-cosine) shared transfer shared-latent-lr10-cosine "foundation:$RUNS/foundation/best.pt" latent \
                   "$HEADS --lr 1e-2 --lr-decay cosine" ;;
    shared-long) shared transfer shared-long "foundation:$RUNS/foundation/best.pt" output "$HEADS $LONG" ;;
    scratch)
      stage1 scratch scratch "$SIZE"
      shared scratch shared-output-context scratch output "$HEADS" ;;
    scratch-latent)
      stage1 scratch scratch "$SIZE"
      shared scratch shared-latent scratch latent "$HEADS --lr 3e-3" ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
