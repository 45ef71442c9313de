#!/usr/bin/env bash
# Rebuild the evidence of models/hand_default.md from nothing: regenerate the held-out data with
# the committed generator, evaluate the shipped model on it, and print the model card's tables.
#   make reproduce-hand            (or: eval "$(make -s env)"; tools/reproduce_hand.sh)
# Writes data/ (held-out splits, skipped when their fingerprints already match) and
# reports/hand_default/ (one metrics.json per table row); prints markdown tables.
# Splits: 1000 frames for the RealSense-like camera (the card's headline), 500 per other camera
# preset, 600 stream frames (10 clips of 2 s). FRAMES=N / PRESET_FRAMES=N / SEQ_FRAMES=N override.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES="${FRAMES:-1000}"
PRESET_FRAMES="${PRESET_FRAMES:-500}"
SEQ_FRAMES="${SEQ_FRAMES:-600}"
MODEL="${MODEL:-models/hand_default.safetensors}"
OUT="${OUT:-reports/hand_default}"
mkdir -p data "$OUT"

make_split() {  # folder, frames, then v2v synth arguments; an existing folder is kept if it has that many frames
    local dir="$1" n="$2"; shift 2
    if [ -f "$dir/meta.json" ] && python -c "import json,sys; m=json.load(open('$dir/meta.json')); sys.exit(m['count'] != $n)"; then
        return
    fi
    rm -rf "$dir"
    v2v synth --out "$dir" --n "$n" "$@" --workers 2 >/dev/null
}

make_split data/synth_test "$FRAMES" --seed 2 --full-frame
make_split data/synth_test_nyu "$PRESET_FRAMES" --seed 2 --full-frame --preset nyu
make_split data/synth_test_icvl "$PRESET_FRAMES" --seed 2 --full-frame --preset icvl
make_split data/synth_test_msra "$PRESET_FRAMES" --seed 2 --full-frame --preset msra
make_split data/synth_seq "$SEQ_FRAMES" --seed 5 --full-frame --sequence 60

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
