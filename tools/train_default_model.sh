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
STAGE2_ARGS=()
STAGE3_ARGS=()
STAGE4_ARGS=()
STAGE5_ARGS=()
STAGE6_ARGS=()
[ "${STAGE1:-0}" = 1 ] && STAGE2=1
[ "${STAGE2:-0}" = 1 ] && STAGE3=1
[ "${STAGE3:-0}" = 1 ] && STAGE4=1
[ "${STAGE4:-0}" = 1 ] && STAGE5=1
if [ "${STAGE1:-0}" = 1 ]; then
    [ -f data/hand_train_dr/meta.json ] || v2v synth --out data/hand_train_dr --n 30000 --seed 21 "${DR_ARGS[@]}"
    v2v train --config config/train/hand_grid48_dr.yaml
    STAGE2_ARGS=(--set init_from=runs/hand_grid48_dr/epoch_02.safetensors)
fi
[ -f data/hand_train_two/meta.json ] || v2v synth --out data/hand_train_two --n 8000 --seed 41 --hands 2 \
    --crop-cube-mm 400 --workers 2
if [ "${STAGE2:-0}" = 1 ]; then
    [ -f data/hand_train_dr12k/meta.json ] || v2v synth --out data/hand_train_dr12k --n 12000 --seed 21 "${DR_ARGS[@]}"
    v2v train --config config/train/hand_grid48_two.yaml "${STAGE2_ARGS[@]}"
    STAGE3_ARGS=(--set init_from=runs/hand_grid48_two/epoch_02.safetensors)
fi
[ -f data/hand_train_dr8k/meta.json ] || v2v synth --out data/hand_train_dr8k --n 8000 --seed 21 "${DR_ARGS[@]}"
if [ "${STAGE3:-0}" = 1 ]; then
    v2v train --config config/train/hand_grid48_two_s3.yaml "${STAGE3_ARGS[@]}"
    STAGE4_ARGS=(--set init_from=runs/hand_grid48_two_s3/epoch_03.safetensors)
fi
[ -f data/hand_train_two42/meta.json ] || v2v synth --out data/hand_train_two42 --n 4000 --seed 42 --hands 2 \
    --crop-cube-mm 400 --workers 2
if [ "${STAGE4:-0}" = 1 ]; then
    v2v train --config config/train/hand_grid48_two_s4.yaml "${STAGE4_ARGS[@]}"
    STAGE5_ARGS=(--set init_from=runs/hand_grid48_two_s4/epoch_03.safetensors)
fi
[ -f data/hand_train_dr_s22/meta.json ] || v2v synth --out data/hand_train_dr_s22 --n 8000 --seed 22 "${DR_ARGS[@]}"
[ -f data/hand_train_two43/meta.json ] || v2v synth --out data/hand_train_two43 --n 12000 --seed 43 --hands 2 \
    --crop-cube-mm 400 --workers 2
if [ "${STAGE5:-0}" = 1 ]; then
    v2v train --config config/train/hand_grid48_two_s5.yaml "${STAGE5_ARGS[@]}"
    STAGE6_ARGS=(--set init_from=runs/hand_grid48_two_s5/epoch_03.safetensors)
fi
[ -f data/hand_train_dr_s23/meta.json ] || v2v synth --out data/hand_train_dr_s23 --n 8000 --seed 23 "${DR_ARGS[@]}"
[ -f data/hand_train_two44/meta.json ] || v2v synth --out data/hand_train_two44 --n 12000 --seed 44 --hands 2 \
    --crop-cube-mm 400 --workers 2
v2v train --config config/train/hand_grid48_two_s6.yaml "${STAGE6_ARGS[@]}"
python tools/ship_model.py runs/hand_grid48_two_s6/epoch_03.safetensors models/hand_default
tools/reproduce_hand.sh
