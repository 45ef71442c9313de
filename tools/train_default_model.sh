#!/usr/bin/env bash
# Reproduce models/hand_default from scratch (see models/hand_default.md).
# Resumable: re-running continues the training from runs/hand_default/last.pt.
# Run inside `eval "$(make -s env)"`. About 4 h on a 2-core CPU (data 25 min,
# refiner 20 min, pose network ~25 min per 1000-step epoch), minutes on a GPU.
set -euo pipefail
EPOCH="${EPOCH:-13}"
[ -f data/synth_train/meta.json ] || v2v synth --out data/synth_train --n 30000 --seed 1 --workers 2
[ -f data/synth_test/meta.json ]  || v2v synth --out data/synth_test --n 1000 --seed 2 --full-frame --workers 2
[ -f runs/refiner/hand_default.refiner.safetensors ] || v2v train-refiner --config config/train/refiner_synthetic.yaml --set steps=2000
[ -f runs/detector/hand_default.detector.safetensors ] || v2v train-detector --config config/train/detector_synthetic.yaml
v2v train --config config/train/hand_synthetic.yaml
python tools/ship_model.py "runs/hand_default/epoch_$(printf %02d "$EPOCH").safetensors" models/hand_default \
    --refiner runs/refiner/hand_default.refiner.safetensors --detector runs/detector/hand_default.detector.safetensors
v2v eval --checkpoint models/hand_default.safetensors --dataset synthetic --root data/synth_test \
    --out reports/hand_default --json
