#!/usr/bin/env bash
# Reproduce models/hand_default from the committed stage weights (see models/hand_default.md).
# Resumable: re-running skips finished steps and continues the training from runs/hand_grid48_dr/last.pt.
# Run inside `eval "$(make -s env)"`. About 1 h on 2 idle cores (data 15 min, 2 epochs of
# ~13-25 min), minutes on a GPU. The refiner, detector and presence companions are trained by
# their own configs (models/hand_default.md, "Companions") and are not retrained here.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f data/hand_train_dr/meta.json ] || v2v synth --out data/hand_train_dr --n 30000 --seed 21 \
    --cameras realsense,nyu,icvl,msra --sensor-jitter 0.6 --sleeve 0.3 --scale-min 0.65 --scale-max 1.2 \
    --crop-cube-mm 400 --workers 2
[ -f data/hand_val/meta.json ] || v2v synth --out data/hand_val --n 200 --seed 3 --full-frame
# Under a shared CPU, OpenMP's passive wait keeps a busy neighbour from slowing every step 5-10x.
OMP_WAIT_POLICY=PASSIVE v2v train --config config/train/hand_grid48_dr.yaml
python tools/ship_model.py runs/hand_grid48_dr/epoch_02.safetensors models/hand_default
tools/reproduce_hand.sh
