"""STS scoring: cosine similarity of the two vectors of each pair against the gold score, Spearman x100."""

from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap, spearmanr


def cosine_similarities(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity; a zero vector gets similarity 0 instead of NaN."""
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    dots = np.einsum("ij,ij->i", first, second)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def spearman_x100(predicted: np.ndarray, gold: np.ndarray) -> float:
    """Spearman rank correlation x100; NaN when the predictions are constant (no ranking at all)."""
    if np.ptp(predicted) < 1e-12:
        return float("nan")
    return float(spearmanr(predicted, gold).statistic * 100)


def bootstrap_interval(
    predicted: np.ndarray, gold: np.ndarray, seed: int = 0, resamples: int = 1000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the Spearman x100, resampling pairs (scipy's ``bootstrap``, paired)."""
    result = bootstrap(
        (np.asarray(predicted), np.asarray(gold)),
        lambda x, y: spearmanr(x, y).statistic * 100,
        paired=True,
        vectorized=False,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
