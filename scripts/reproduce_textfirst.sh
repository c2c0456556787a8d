#!/usr/bin/env bash
# Text-first MetaEOL rows (issue 23, docs/methods.md "Text first") on SmolLM2-135M, beside the existing rows:
#   1. its readout layer tuned on STS-B dev (500 pairs), as MetaEOL's was;
#   2. English 7-task STS on the same seeded pairs as the MetaEOL / PromptEOL rows (500 per task, seed 0), at the
#      last and the tuned layer (one cached pass), and paired comparisons against MetaEOL and PromptEOL;
#   3. retrieval on SciFact's seeded 500-document sample (the rows of docs/retrieval.md);
#   4. documents/s on SciFact abstracts, side by side with MetaEOL, PromptEOL and KE (benchmarks/retrieval_speed.py).
# Embeddings are cached and a finished JSON is skipped, so an interrupted run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-docs/results}"
METAEOL=".venv/bin/metaeol"
smol=metaeol-smollm2-135m
name="smollm2-135m MetaEOL text-first"
slug() { printf '%s' "$1" | sed -E 's/[^A-Za-z0-9._-]+/-/g; s/^-+//; s/-+$//'; }
tf=(--model "$smol" --templates metaeol-textfirst)

tune="$OUT/$(slug "$name")-tune-layer.json"
[ -f "$tune" ] || "$METAEOL" tune-layer "${tf[@]}" --label "$name" --limit "${DEV_LIMIT:-500}" --out "$OUT"
tuned=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['best_layer'])" "$tune")
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

R="$OUT/retrieval"
for split in all dev test; do
  for spec in "last layer|" "tuned layer $tuned|--layer $tuned"; do
    label="SmolLM2 MetaEOL text-first ${spec%%|*} (sample 500)"; read -r -a view <<< "${spec#*|}"
    [ -f "$R/$(slug "$label-scifact-$split").json" ] || "$METAEOL" eval retrieval --task scifact --split "$split" \
      --corpus-sample 500 --label "$label" --out "$R" "${tf[@]}" "${view[@]}"
  done
done

.venv/bin/python benchmarks/retrieval_speed.py
