#!/usr/bin/env bash
# Text-first MetaEOL rows (issue 23, docs/methods.md "Text first") on SmolLM2-135M, beside the existing rows:
#   1. its readout layer tuned on STS-B dev (500 pairs), as MetaEOL's was;
#   2. English 7-task STS on the same seeded pairs as the MetaEOL / PromptEOL rows (500 per task, seed 0), at the
#      last and the tuned layer (one cached pass), and paired comparisons against MetaEOL and PromptEOL;
#   3. retrieval on SciFact's seeded 500-document sample (the rows of docs/retrieval.md);
#   4. documents/s on SciFact abstracts, side by side with MetaEOL, PromptEOL and KE (benchmarks/retrieval_speed.py).
# Embeddings are cached and a finished JSON is skipped, so an interrupted run resumes.
# Usage: bash scripts/reproduce_textfirst.sh [metaeol-textfirst|metaeol-textfirst-short]...  (default: both)
#        SPEED=0 skips the speed benchmark, STS=0 the STS test rows (the test row goes to the set chosen on dev).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-docs/results}"
METAEOL=".venv/bin/metaeol"
smol=metaeol-smollm2-135m-paper  # the paper's vectors (the default preset minus its shipped centering)
slug() { printf '%s' "$1" | sed -E 's/[^A-Za-z0-9._-]+/-/g; s/^-+//; s/-+$//'; }

rows() {  # template set, label stem
local set="$1" stem="$2"
local name="smollm2-135m $stem"
local tf=(--model "$smol" --templates "$set")

local tune="$OUT/$(slug "$name")-tune-layer.json"
[ -f "$tune" ] || "$METAEOL" tune-layer "${tf[@]}" --label "$name" --limit "${DEV_LIMIT:-500}" --out "$OUT"
local tuned=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['best_layer'])" "$tune")
if [ "${STS:-1}" != 0 ]; then
for spec in "last layer|" "tuned layer $tuned|--layer $tuned"; do
  label="$name ${spec%%|*}"; read -r -a view <<< "${spec#*|}"
  [ -f "$OUT/$(slug "$label")-sts.json" ] || \
    "$METAEOL" eval sts "${tf[@]}" "${view[@]}" --label "$label" --sts-limit "${STS_LIMIT:-500}" --out "$OUT"
done
for other in "smollm2-135m-MetaEOL-last-layer-all" "smollm2-135m-MetaEOL-tuned-layer-28-all" \
             "smollm2-135m-PromptEOL-last-layer-all"; do
  for mine in "last layer" "tuned layer $tuned"; do
    "$METAEOL" eval compare "$OUT/$(slug "$name $mine")-sts.json" "$OUT/$other.json" \
      > "$OUT/$(slug "$name $mine")-vs-$other.txt"
  done
done
fi

R="$OUT/retrieval"
for split in all dev test; do
  for spec in "last layer|" "tuned layer $tuned|--layer $tuned"; do
    label="SmolLM2 $stem ${spec%%|*} (sample 500)"; read -r -a view <<< "${spec#*|}"
    [ -f "$R/$(slug "$label-scifact-$split").json" ] || "$METAEOL" eval retrieval --task scifact --split "$split" \
      --corpus-sample 500 --label "$label" --out "$R" "${tf[@]}" "${view[@]}"
  done
done
}

sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(metaeol-textfirst metaeol-textfirst-short)
for set in "${sets[@]}"; do
  case "$set" in
    metaeol-textfirst) rows "$set" "MetaEOL text-first" ;;
    metaeol-textfirst-short) rows "$set" "MetaEOL text-first short" ;;
    *) echo "unknown template set $set" >&2; exit 2 ;;
  esac
done
[ "${SPEED:-1}" = 0 ] || .venv/bin/python benchmarks/retrieval_speed.py
