"""Seeded, stratified samples, so a CPU run of the benchmark takes minutes instead of hours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over strata in proportion to ``counts`` (largest remainder), never above a stratum's size."""
    exact = counts / counts.sum() * total
    taken = np.minimum(np.floor(exact).astype(int), counts)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    while taken.sum() < total:
        for stratum in order:
            if taken.sum() >= total:
                break
            if taken[stratum] < counts[stratum]:
                taken[stratum] += 1
    return taken


def stratified_indices(strata: Sequence[object], limit: int, seed: int) -> np.ndarray:
    """Indices of a sample of ``limit`` items, proportionally stratified by ``strata``, sorted.

    Each stratum is drawn as a prefix of one seeded permutation, so with the same seed a smaller sample is (nearly)
    a subset of a larger one and reuses its cached embeddings. ``limit`` of 0 or at least the number of items
    returns every index (the full data).
    """
    strata = np.asarray([str(value) for value in strata])
    if limit <= 0 or limit >= len(strata):
        return np.arange(len(strata))
    names, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(seed)
    chosen = []
    for stratum, size in enumerate(_allocate(counts, limit)):
        members = np.flatnonzero(inverse == stratum)
        chosen.append(rng.permutation(members)[:size])
    return np.sort(np.concatenate(chosen))
