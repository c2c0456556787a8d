"""How different are a sentence's prompt vectors? MetaEOL (instructions before the text) against text-first short.

For 48 seeded STS-B test sentences, every prompt of each set is embedded on its own (same model, last layer); the
number is the mean pairwise cosine between a sentence's prompt vectors, raw and after removing each prompt's mean
over the sentences (its common direction). Lower means the prompts see the sentence more differently, i.e. the
mean over prompts is more of an ensemble. Used in docs/methods.md ("Text first").

Run:  .venv/bin/python scripts/prompt_diversity.py   Writes docs/results/prompt-diversity.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from throughput import sample_sts_b_sentences  # noqa: E402

SETS = ("metaeol", "metaeol-textfirst-short", "metaeol-textfirst")


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """(sentences, prompts, d) -> the mean over sentences of the mean cosine between two different prompts."""
    unit = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
    similarity = np.einsum("npd,nqd->npq", unit, unit)
    prompts = similarity.shape[1]
    return float(((similarity.sum(axis=(1, 2)) - prompts) / (prompts * (prompts - 1))).mean())


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__.splitlines()[0],
                            epilog="Writes docs/results/prompt-diversity.json (about 5 minutes here).").parse_args()
    import metaeol_integrations
    from metaeol_integrations.core.templates import BUILTIN_TEMPLATE_SETS

    sentences = sample_sts_b_sentences(REPO.parent / "shared" / "data" / "senteval", 48, seed=1)
    model = metaeol_integrations.load("metaeol-smollm2-135m", device="cpu", model_kwargs={"dtype": "float32"})
    record = {"sentences": len(sentences), "data": "STS-B test, seed 1", "layer": -1, "sets": {}}
    for name in SETS:
        per_prompt = []
        for template in BUILTIN_TEMPLATE_SETS[name].templates:
            model[0].templates = [template.text]
            per_prompt.append(model.encode(sentences, batch_size=16))
        vectors = np.stack(per_prompt, axis=1)
        record["sets"][name] = {"raw": round(mean_pairwise_cosine(vectors), 4),
                                "centred": round(mean_pairwise_cosine(vectors - vectors.mean(0, keepdims=True)), 4)}
        print(name, record["sets"][name], flush=True)
    out = REPO / "docs" / "results" / "prompt-diversity.json"
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
