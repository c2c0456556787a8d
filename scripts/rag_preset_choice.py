"""Choose a retrieval preset's recipe from the dev-half grids (scripts/retrieval_grid.py): the best nDCG@10 on the
SciFact dev queries among the settings a shipped model can carry (no centering, or the STS-B mean; the evaluated
corpus's own mean needs a fit on the user's documents, so it is reported beside each candidate, not chosen); a
candidate within TIE points of the best that is cheaper (fewer LLM token positions per document) wins instead.
Writes the record the preset tests check.

Usage: python scripts/rag_preset_choice.py [--model smollm2|gemma3] > docs/results/retrieval/rag-preset-dev[-gemma3].json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

GRIDS = Path(__file__).resolve().parents[1] / "docs" / "results" / "retrieval" / "grids"
TIE = 0.5
SHIPPABLE_CENTERS = ("none", "sts-b")
# Per base model: candidate grid file -> (recipe as load()/preset keywords, cost per document for the tie rule, in
# PromptEOL passes' worth of LLM token positions on a SciFact abstract, from benchmarks/results/retrieval_speed*.json).
CANDIDATES = {
    "smollm2": {
        "SmolLM2-PromptEOL-scifact-dev-grid.json": ({"templates": "prompteol"}, 1.0),
        "SmolLM2-KE-scifact-dev-grid.json": ({"templates": "ke"}, 1.0),
        "SmolLM2-retrieval-prompts-scifact-dev-grid.json": (
            {"templates": "retrieval-document", "task_templates": {"query": "retrieval-query"}}, 1.0),
        "SmolLM2-PromptEOL-KE-scifact-dev-grid.json": ({"templates": "prompteol+ke"}, 2.0),
        # Windows repeat the template (339, 354, 385 positions against PromptEOL's 307); text-first MetaEOL runs the
        # text once plus eight short tails (550).
        "SmolLM2-PromptEOL-chunks-of-128-tokens-scifact-dev-grid.json": (
            {"templates": "prompteol", "chunk_tokens": 128}, 1.10),
        "SmolLM2-PromptEOL-chunks-of-64-tokens-scifact-dev-grid.json": (
            {"templates": "prompteol", "chunk_tokens": 64}, 1.15),
        "SmolLM2-PromptEOL-chunks-of-32-tokens-scifact-dev-grid.json": (
            {"templates": "prompteol", "chunk_tokens": 32}, 1.25),
        "SmolLM2-MetaEOL-text-first-short-scifact-dev-grid.json": ({"templates": "metaeol-textfirst-short"}, 1.8),
        "SmolLM2-MetaEOL-scifact-dev-grid.json": ({"templates": "metaeol"}, 8.0),
    },
    # Gemma 3 270M: its STS plus recipe (PromptEOL + Token Prepending 1-5) whole and on windows, and PromptEOL
    # without Token Prepending on 32-token windows. Costs: positions per abstract in
    # benchmarks/results/retrieval_speed_gemma3.json (314 whole; 347, 379, 404 on 128/64/32-token windows; PromptEOL
    # without Token Prepending counted as its windowed twin).
    "gemma3": {
        "Gemma3-plus-scifact-dev-grid.json": ({"templates": "prompteol", "token_prepending": [1, 5]}, 1.0),
        "Gemma3-plus-chunks-of-128-tokens-scifact-dev-grid.json": (
            {"templates": "prompteol", "token_prepending": [1, 5], "chunk_tokens": 128}, 1.10),
        "Gemma3-plus-chunks-of-64-tokens-scifact-dev-grid.json": (
            {"templates": "prompteol", "token_prepending": [1, 5], "chunk_tokens": 64}, 1.21),
        "Gemma3-plus-chunks-of-32-tokens-scifact-dev-grid.json": (
            {"templates": "prompteol", "token_prepending": [1, 5], "chunk_tokens": 32}, 1.29),
        "Gemma3-PromptEOL-chunks-of-32-tokens-scifact-dev-grid.json": (
            {"templates": "prompteol", "chunk_tokens": 32}, 1.29),
    },
}


def best_setting(rows: list[dict], centers: tuple[str, ...] | None = None) -> dict:
    """The grid row with the best nDCG@10, among rows with one of ``centers`` (None: every row)."""
    return max((row for row in rows if centers is None or row["center"] in centers), key=lambda row: row["ndcg_at_10"])


def choose(model: str) -> dict:
    """The dev record for one base model: every candidate's best shippable setting, the winner by the rule."""
    rows = []
    for name, (recipe, cost) in CANDIDATES[model].items():
        path = GRIDS / name
        if not path.is_file():
            continue
        grid = json.loads(path.read_text(encoding="utf-8"))
        best, with_fit = best_setting(grid["rows"], SHIPPABLE_CENTERS), best_setting(grid["rows"])
        rows.append({"label": grid["label"], "recipe": {**recipe, "layer": best["layer"],
                                                        "embed_filter": best["embed_filter"], "center": best["center"]},
                     "ndcg_at_10": best["ndcg_at_10"], "passes_per_document": cost, "n_queries": grid["n_queries"],
                     "n_documents": grid["n_documents"],
                     "with_corpus_fit": {key: with_fit[key] for key in ("layer", "embed_filter", "center", "ndcg_at_10")}})
    rows.sort(key=lambda row: -row["ndcg_at_10"])
    top = rows[0]["ndcg_at_10"]
    tied = [row for row in rows if top - row["ndcg_at_10"] <= TIE]
    winner = min(tied, key=lambda row: (row["passes_per_document"], -row["ndcg_at_10"]))
    return {"rule": f"best SciFact dev nDCG@10 among settings a shipped model carries (centering: "
                    f"{' or '.join(SHIPPABLE_CENTERS)}); within {TIE} of it, the fewest LLM token positions per document",
            "model": model, "split": "dev", "task": "scifact", "corpus_sample": 500, "seed": 0,
            "best": winner, "candidates": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(CANDIDATES), default="smollm2")
    print(json.dumps(choose(parser.parse_args().model), indent=1))


if __name__ == "__main__":
    main()
