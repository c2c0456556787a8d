"""Which fusion a hybrid constructor uses: the model's measured one, or the caller's override."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from metaeol_integrations.hybrid.fusion import Fusion
from metaeol_integrations.presets import fusion_for


def resolve_fusion(model: Any, fusion: Fusion | str | None = None,
                   weights: Sequence[float] | None = None) -> Fusion:
    """The fusion a hybrid constructor uses: ``fusion`` (a :class:`Fusion` or a method name) or the preset's, with
    ``weights`` = (dense, BM25) replacing its weights (any positive scale)."""
    base = fusion_for(model)
    if isinstance(fusion, str):
        base = replace(base, method=fusion)
    elif fusion is not None:
        base = fusion
    if weights is not None:
        if len(weights) != 2 or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights are (dense, BM25), non-negative and not both 0; got {list(weights)!r}.")
        base = replace(base, dense_weight=weights[0] / (weights[0] + weights[1]))
    return base
