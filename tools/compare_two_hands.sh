#!/usr/bin/env bash
# Compare a candidate hand model with the shipped one on the two-hand splits of docs/multi_target.md,
# with the commands that page and the model card use, and print one table (tools/compare_reports.py).
#   tools/compare_two_hands.sh CANDIDATE [BASELINE]      (inside `eval "$(make -s env)"`)
# CANDIDATE and BASELINE (default models/hand_default.safetensors) are model files that find their
# refiner, detector and presence classifier: a training stage gets them with
#   python tools/ship_model.py models/stages/S.safetensors models/S --companions hand_default --no-reproduce
# SPLITS=validation (default: the development splits, seeds 78-86), held-out (seeds 901-903: report,
# do not choose with them) or both. OUT=reports/compare (one folder per model, one JSON per split).
# LIMIT=N evaluates the first N frames of each split only (a quick check of the plumbing).
# The two models are evaluated side by side, one thread each (2 cores: about 10 min per set of splits
# for the 48³ model in bf16). Splits missing under data/ are made first with the committed generator.
set -euo pipefail
cd "$(dirname "$0")/.."
CANDIDATE="${1:?usage: tools/compare_two_hands.sh CANDIDATE [BASELINE]}"
BASELINE="${2:-models/hand_default.safetensors}"
SPLITS="${SPLITS:-validation}"
OUT="${OUT:-reports/compare}"
LIMIT_ARGS=()
[ -n "${LIMIT:-}" ] && LIMIT_ARGS=(--limit "$LIMIT")

case "$SPLITS" in
    validation) NAMES=(dev_two dev_two2 dev_two_solo dev_mixed dev_two_seq) ;;
    held-out) NAMES=(multi_test multi_test_solo multi_test_mixed multi_test_seq multi_test_seq1) ;;
    both) NAMES=(dev_two dev_two2 dev_two_solo dev_mixed dev_two_seq
                 multi_test multi_test_solo multi_test_mixed multi_test_seq multi_test_seq1) ;;
    *) echo "SPLITS must be validation, held-out or both, got '$SPLITS'" >&2; exit 2 ;;
esac

synth_args() {  # the v2v synth arguments of a split (docs/multi_target.md, models/hand_default.md)
    case "$1" in
        dev_two) echo "--n 200 --seed 78 --hands 2 --full-frame" ;;
        dev_two_solo) echo "--n 200 --seed 78 --hands 2 --full-frame --solo" ;;
        dev_two2) echo "--n 400 --seed 86 --hands 2 --full-frame" ;;
        dev_mixed) echo "--n 200 --seed 80 --hands 0-2 --full-frame" ;;
        dev_two_seq) echo "--n 480 --seed 79 --hands 2 --full-frame --sequence 60" ;;
        multi_test) echo "--n 400 --seed 901 --hands 2 --full-frame" ;;
        multi_test_solo) echo "--n 400 --seed 901 --hands 2 --full-frame --solo" ;;
        multi_test_mixed) echo "--n 300 --seed 903 --hands 0-2 --full-frame" ;;
        multi_test_seq) echo "--n 480 --seed 902 --hands 2 --sequence 60 --full-frame" ;;
        multi_test_seq1) echo "--n 480 --seed 902 --hands 1 --sequence 60 --full-frame" ;;
    esac
}

for name in "${NAMES[@]}"; do
    # shellcheck disable=SC2046  # the arguments are words on purpose
    [ -f "data/$name/meta.json" ] || v2v synth --out "data/$name" $(synth_args "$name") --workers 2 >/dev/null
done

evaluate() {  # model, its report folder: every split, one thread
    local model="$1" dir="$2" name extra
    mkdir -p "$dir"
    for name in "${NAMES[@]}"; do
        extra=()
        case "$name" in *seq*) extra=(--tracking) ;; esac
        OMP_NUM_THREADS=1 v2v eval --checkpoint "$model" --dataset synthetic --root "data/$name" \
            "${extra[@]}" "${LIMIT_ARGS[@]}" --json > "$dir/$name.json"
    done
}

A="$OUT/$(basename "$CANDIDATE" .safetensors)"
B="$OUT/$(basename "$BASELINE" .safetensors)"
[ "$A" != "$B" ] || { echo "the two models need different file names" >&2; exit 2; }
evaluate "$CANDIDATE" "$A" &
candidate_job=$!
evaluate "$BASELINE" "$B"
wait "$candidate_job"
python tools/compare_reports.py "$A" "$B" "${NAMES[@]}"
