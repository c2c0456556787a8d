"""Fit the centering mean a retrieval preset ships with: its vectors (after its EmbedFilter) averaged over seeded
general-domain sentences that are neither its tuning nor its test data (STS-B train, from the SentEval folder).

Usage: python scripts/fit_preset_center.py metaeol-rag-smollm2-135m [--senteval-dir DIR]
Writes metaeol_integrations/postprocessing/means/<the preset's center file>; tests/test_presets_retrieval.py checks
that the shipped file equals a re-fit.
"""

from __future__ import annotations

import argparse
import random

from metaeol_integrations.loading import load
from metaeol_integrations.postprocessing import add_embed_filter, fit_center, write_shipped_center
from metaeol_integrations.postprocessing.center import SHIPPED_MEANS
from metaeol_integrations.presets import PRESETS, Preset

FIT_TEXTS = 1000
FIT_SEED = 0


def fit_texts(senteval_dir: str | None = None, n: int = FIT_TEXTS, seed: int = FIT_SEED) -> list[str]:
    """The seeded STS-B train sentences (both sides, deduplicated, sorted, then sampled)."""
    from metaeol_integrations.evaluation.data import read_sts_benchmark

    pairs = read_sts_benchmark("train", senteval_dir)
    texts = sorted(set(pairs.sentences1) | set(pairs.sentences2))
    return random.Random(seed).sample(texts, min(n, len(texts)))


def uncentered(preset: Preset, base: str):
    """The preset's model up to its centering step: the base preset with its settings and EmbedFilter."""
    model = load(base, device="cpu", **preset.settings())
    if preset.embed_filter is not None:
        add_embed_filter(model, preset.embed_filter)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="a preset with a `center` file")
    parser.add_argument("--base", default="metaeol-smollm2-135m", help="the preset's base preset (same weights)")
    parser.add_argument("--senteval-dir")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    texts = fit_texts(args.senteval_dir)
    model = fit_center(uncentered(preset, args.base), texts)
    path = write_shipped_center(model[-1], SHIPPED_MEANS / preset.center,
                                fitted_on=f"{len(texts)} STS-B train sentences, seed {FIT_SEED}", preset=preset.name)
    print(f"wrote {path} (mean over {len(texts)} texts, {model[-1].dimension} dimensions)")


if __name__ == "__main__":
    main()
