#!/usr/bin/env bash
# Reproduce models/hand_default from the committed stage weights (see models/hand_default.md).
# Stage 6 (config/train/hand_grid48_two_s6.yaml, the shipped weights) starts from
# models/stages/hand_grid48_two_s5.safetensors; STAGE5=1 first retrains stage 5 too
# (config/train/hand_grid48_two_s5.yaml, from models/stages/hand_grid48_two_s4), STAGE4=1 stage 4
# before it (config/train/hand_grid48_two_s4.yaml, from models/stages/hand_grid48_two_s3), STAGE3=1 stage 3
# before it (config/train/hand_grid48_two_s3.yaml, from models/stages/hand_grid48_two_s2), STAGE2=1 stage 2
# before it (config/train/hand_grid48_two.yaml, from models/stages/hand_grid48_dr_s1) and STAGE1=1
# stage 1 before that (config/train/hand_grid48_dr.yaml, from models/stages/hand_grid32); each then
# starts the next stage from its result. Resumable: re-running skips finished steps and continues a
# training from its runs/<name>/last.pt. Run inside `eval "$(make -s env)"`.
# Stages 6, 5, 4 and 3 took about 40-50 min each on 2 AVX512 cores in fp32 (3 epochs of 500 steps,
# evaluations sharing the CPU for part of it); stage 2 70 min on 2 AVX2 cores in fp32 (data 15 min,
# 2 epochs of ~30 min); stage 1 about 1 h on 2 cores with bf16; minutes on a GPU. The refiner,
# detector and presence companions are trained by their own configs (models/hand_default.md,
# "Companions") and are not retrained here.
set -euo pipefail
cd "$(dirname "$0")/.."
# Under a shared CPU, OpenMP's passive wait keeps a busy neighbour from slowing every step 5-10x.
export OMP_WAIT_POLICY=PASSIVE
DR_ARGS=(--cameras realsense,nyu,icvl,msra --sensor-jitter 0.6 --sleeve 0.3 --scale-min 0.65 --scale-max 1.2
         --crop-cube-mm 400 --workers 2)
[ -f data/hand_val/meta.json ] || v2v synth --out data/hand_val --n 200 --seed 3 --full-frame

single() {  # folder, frames, seed: domain-randomised single hands (kept when already there)
    [ -f "data/$1/meta.json" ] || v2v synth --out "data/$1" --n "$2" --seed "$3" "${DR_ARGS[@]}"
}
two() {  # folder, frames, seed: two-hand scenes
    [ -f "data/$1/meta.json" ] || v2v synth --out "data/$1" --n "$2" --seed "$3" --hands 2 --crop-cube-mm 400 --workers 2
}
NEXT=()  # empty: a stage starts from its config's init_from (the committed stage file)
stage() {  # config name, epoch file: train it, and start the next stage from its result
    v2v train --config "config/train/$1.yaml" "${NEXT[@]}"
    NEXT=(--set "init_from=runs/$1/$2.safetensors")
}
[ "${STAGE1:-0}" = 1 ] && STAGE2=1
[ "${STAGE2:-0}" = 1 ] && STAGE3=1
[ "${STAGE3:-0}" = 1 ] && STAGE4=1
[ "${STAGE4:-0}" = 1 ] && STAGE5=1
if [ "${STAGE1:-0}" = 1 ]; then single hand_train_dr 30000 21; stage hand_grid48_dr epoch_02; fi
two hand_train_two 8000 41
if [ "${STAGE2:-0}" = 1 ]; then single hand_train_dr12k 12000 21; stage hand_grid48_two epoch_02; fi
single hand_train_dr8k 8000 21
if [ "${STAGE3:-0}" = 1 ]; then stage hand_grid48_two_s3 epoch_03; fi
two hand_train_two42 4000 42
if [ "${STAGE4:-0}" = 1 ]; then stage hand_grid48_two_s4 epoch_03; fi
single hand_train_dr_s22 8000 22
two hand_train_two43 12000 43
if [ "${STAGE5:-0}" = 1 ]; then stage hand_grid48_two_s5 epoch_03; fi
single hand_train_dr_s23 8000 23
two hand_train_two44 12000 44
stage hand_grid48_two_s6 epoch_03
python tools/ship_model.py runs/hand_grid48_two_s6/epoch_03.safetensors models/hand_default
tools/reproduce_hand.sh
