"""The fixed recipes whose SmolLM2 vectors were recorded before the core reshape (issue 20).

``python -m tests.recipe_vectors`` writes ``tests/data/recipe_vectors.npz`` again; only do that when a change of
vectors is intended and explained. ``tests/test_recipe_vectors.py`` checks the current code against the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

VECTORS_FILE = Path(__file__).parent / "data" / "recipe_vectors.npz"

TEXTS = [
    "A man is playing a guitar.",
    'She said "no" -- twice, then left.',
    "The stock market fell today.",
    # Long enough to be truncated in the slot at max_seq_length 64 and split into several 16-token windows.
    "Vitamin D deficiency is common in patients with chronic kidney disease, and supplementation has been "
    "proposed to reduce cardiovascular events, although randomised trials have so far given mixed results "
    "for mortality, fractures and blood pressure in this population.",
]

# name -> (load() options, encode method). Covers every option of a recipe and every method of the pipeline.
RECIPES: dict[str, tuple[dict, str]] = {
    "metaeol": ({}, "encode"),
    "prompteol-layer20": ({"templates": "prompteol", "layer": 20}, "encode"),
    "ke": ({"templates": "ke"}, "encode"),
    "metaeol+ke": ({"templates": "metaeol+ke"}, "encode"),
    "pcot-layers": ({"templates": "pcot", "layer": [10, 20]}, "encode"),
    "metaeol-no-prefix-cache": ({"prefix_cache": False, "max_tokens_per_forward": 256}, "encode"),
    "prompteol-truncated": ({"templates": "prompteol", "max_seq_length": 64}, "encode"),
    "prompteol-chunks": ({"templates": "prompteol", "chunk_tokens": 16}, "encode"),
    "prompteol-tp": ({"templates": "prompteol", "token_prepending": [1, 7]}, "encode"),
    "prompteol-cp": ({"templates": "prompteol", "contrastive": {"layer": 4, "mode": "nr"}}, "encode"),
    "query-templates": ({"task_templates": {"query": "prompteol"}}, "encode_query"),
    "rag-preset": ({"name": "metaeol-rag-smollm2-135m"}, "encode_document"),
    "prompteol-int8": ({"templates": "prompteol", "quantize": "int8"}, "encode"),
}


def recipe_vectors(name: str) -> np.ndarray:
    """The vectors of recipe ``name`` for :data:`TEXTS`, from a freshly loaded model."""
    import metaeol_integrations

    options, method = RECIPES[name]
    options = dict(options)
    model = metaeol_integrations.load(options.pop("name", "metaeol-smollm2-135m-paper"), device="cpu", **options)
    return getattr(model, method)(TEXTS, batch_size=3, convert_to_numpy=True)


if __name__ == "__main__":
    np.savez(VECTORS_FILE, **{name: recipe_vectors(name) for name in RECIPES})
    print(f"wrote {VECTORS_FILE}")
