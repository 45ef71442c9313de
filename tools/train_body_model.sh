#!/usr/bin/env bash
# Reproduce models/body_default from scratch (see models/body_default.md).
# Resumable: re-running skips finished steps and continues training from runs/body_default/last.pt.
# Run inside `eval "$(make -s env)"`. On a 2-core CPU: data ~10 min, pose network ~12 min
# per 1000-step epoch (8 epochs), refiner ~20 min; minutes on a GPU.
set -euo pipefail
EPOCH="${EPOCH:-8}"
[ -f data/body_test_front/meta.json ] || v2v synth --body --view front --out data/body_test_front --n 1000 --seed 12 --full-frame --workers 2
[ -f data/body_test_top/meta.json ]   || v2v synth --body --view top   --out data/body_test_top   --n 1000 --seed 13 --full-frame --workers 2
[ -f data/body_train/meta.json ]      || v2v synth --body --view both  --out data/body_train      --n 40000 --seed 11 --workers 2
v2v train --config config/train/body_synthetic.yaml
[ -f runs/refiner/body_default.refiner.safetensors ] || v2v train-refiner --config config/train/refiner_body.yaml
python tools/ship_model.py "runs/body_default/epoch_$(printf %02d "$EPOCH").safetensors" models/body_default \
    --refiner runs/refiner/body_default.refiner.safetensors
for view in front top; do
    v2v eval --checkpoint models/body_default.safetensors --dataset synthetic --root "data/body_test_$view" \
        --out "reports/body_default_$view" --json > "reports/body_default_$view.json"
done
