#!/usr/bin/env bash
# Rebuild the evidence of models/hand_default.md from nothing: regenerate the held-out data with
# the committed generator, evaluate the shipped model on it, and print the model card's tables.
#   make reproduce-hand            (or: eval "$(make -s env)"; tools/reproduce_hand.sh)
# Writes data/ (held-out splits, skipped when their fingerprints already match) and
# reports/hand_default/ (one metrics.json per table row); prints markdown tables.
# About 15 min on 2 idle cores. FRAMES=N (default 1000) shortens every split for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES="${FRAMES:-1000}"
MODEL="${MODEL:-models/hand_default.safetensors}"
OUT="${OUT:-reports/hand_default}"
mkdir -p data "$OUT"

make_split() {  # folder, then v2v synth arguments
    local dir="$1"; shift
    if [ -f "$dir/meta.json" ] && python -c "import json,sys; m=json.load(open('$dir/meta.json')); sys.exit(m['count'] != $FRAMES)"; then
        return
    fi
    rm -rf "$dir"
    v2v synth --out "$dir" --n "$FRAMES" "$@" --workers 2 >/dev/null
}

make_split data/synth_test --seed 2 --full-frame
make_split data/synth_test_nyu --seed 2 --full-frame --preset nyu
make_split data/synth_test_icvl --seed 2 --full-frame --preset icvl
make_split data/synth_test_msra --seed 2 --full-frame --preset msra
make_split data/synth_seq --seed 5 --full-frame --sequence 60

ev() {  # name, then v2v eval arguments
    local name="$1"; shift
    v2v eval --checkpoint "$MODEL" --dataset synthetic --json "$@" > "$OUT/$name.json"
}
ev realsense --root data/synth_test
ev realsense_gt_centres --root data/synth_test --centers gt
ev nyu --root data/synth_test_nyu
ev icvl --root data/synth_test_icvl
ev msra --root data/synth_test_msra
ev stream_tracking --root data/synth_seq --tracking
ev stream_every_frame --root data/synth_seq

python tools/hand_card.py "$OUT" --model "$MODEL"
