#!/usr/bin/env bash
# Reproduce models/body_default from scratch (see models/body_default.md).
# Resumable: re-running skips finished steps and continues training from runs/body_default/last.pt.
# Run inside `eval "$(make -s env)"`. On a 2-core CPU: data ~15 min, pose network ~12 min
# per 1000-step epoch at 32³ (8 epochs), then ~18 min per epoch at 40³ (5 epochs) and ~31 min
# per epoch at 48³ (4 epochs, then 3 with the top view weighted 3:1), refiner
# ~20 min; minutes on a GPU.
set -euo pipefail
EPOCH="${EPOCH:-3}"  # the stage-4 epoch to ship
[ -f data/body_test_front/meta.json ] || v2v synth --body --view front --out data/body_test_front --n 1000 --seed 12 --full-frame --workers 2
[ -f data/body_test_top/meta.json ]   || v2v synth --body --view top   --out data/body_test_top   --n 1000 --seed 13 --full-frame --workers 2
[ -f data/body_train/meta.json ]      || v2v synth --body --view both  --out data/body_train      --n 40000 --seed 11 --workers 2
[ -f data/body_train_top/meta.json ]  || v2v synth --body --view top   --out data/body_train_top  --n 20000 --seed 14 --workers 2
# Stage 1: 32³ (config/train/body_synthetic.yaml, 8 epochs).
v2v train --config config/train/body_synthetic.yaml
# Stage 2: fine-tuned at 40³ from stage 1's last.pt: 3 epochs on body_train, then 2 with the extra top views.
[ -f runs/body_grid40/epoch_03.safetensors ] || v2v train --config config/train/body_grid40.yaml --set epochs=3 train_data=data/body_train
v2v train --config config/train/body_grid40.yaml
# Stage 3: fine-tuned at 48³ from stage 2's last.pt (2:1 top:front pool, epochs 3-4 at lr/10).
v2v train --config config/train/body_grid48.yaml
# Stage 4: the top view weighted 3:1, 2 epochs at the stage-3 rate, the 3rd at lr/10.
v2v train --config config/train/body_grid48_top.yaml
[ -f runs/refiner/body_default.refiner.safetensors ] || v2v train-refiner --config config/train/refiner_body.yaml
python tools/ship_model.py "runs/body_grid48_top/epoch_$(printf %02d "$EPOCH").safetensors" models/body_default \
    --refiner runs/refiner/body_default.refiner.safetensors
for view in front top; do
    v2v eval --checkpoint models/body_default.safetensors --dataset synthetic --root "data/body_test_$view" \
        --out "reports/body_default_$view" --json > "reports/body_default_$view.json"
done
