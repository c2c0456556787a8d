"""Fusing a dense ranking with a BM25 ranking: the formulas LangChain and LlamaIndex use, written once.

Three methods, each over every retriever's top ``candidates`` documents (a document missing from a list gets nothing
from it):

- ``minmax``: a convex combination of per-query min-max normalised scores (LlamaIndex's ``relative_score``);
- ``zscore``: the same with each list scaled by its mean +- 3 standard deviations, i.e. z / 6 + 1/2 (LlamaIndex's
  ``dist_based_score``, an affine map of the z-score);
- ``rrf``: weighted reciprocal-rank fusion, sum of weight / (k + rank), ranks from 1 (LangChain's
  ``EnsembleRetriever``).

Ties keep the order in which documents first appear, dense list first (both ecosystems sort stably over that order),
so the harness's fused rankings and the ecosystems' retrievers agree document for document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

FUSION_METHODS = ("minmax", "zscore", "rrf")
"""Fusion methods, in the order the docs list them."""

LLAMA_INDEX_MODES = {"minmax": "relative_score", "zscore": "dist_based_score"}
"""The ``QueryFusionRetriever`` mode computing each score fusion (its ``reciprocal_rerank`` ignores weights)."""


def check_fusion_method(method: str) -> str:
    """``method`` if it is one of :data:`FUSION_METHODS`, else a ValueError naming them."""
    if method not in FUSION_METHODS:
        raise ValueError(f"Unknown fusion method {method!r}. Fix: use one of {', '.join(FUSION_METHODS)}.")
    return method


@dataclass(frozen=True)
class Fusion:
    """How a hybrid retriever merges the dense ranking with BM25's.

    ``dense_weight`` is the dense side's share (BM25 gets ``1 - dense_weight``); 0 reproduces BM25 alone, 1 the dense
    ranking alone. ``candidates``: documents each side contributes before fusion. ``rrf_k``: the k of ``rrf``.
    """

    method: str = "minmax"
    dense_weight: float = 0.5
    candidates: int = 100
    rrf_k: int = 60

    def __post_init__(self) -> None:
        check_fusion_method(self.method)
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError(f"dense_weight is a share in [0, 1], not {self.dense_weight!r}.")
        if self.candidates < 1 or self.rrf_k < 0:
            raise ValueError("candidates must be >= 1 and rrf_k >= 0.")

    @property
    def weights(self) -> tuple[float, float]:
        """(dense, BM25) weights, in the order the hybrid retrievers list their retrievers."""
        return (self.dense_weight, 1.0 - self.dense_weight)

    def describe(self) -> str:
        """One line for model cards and ``--help``."""
        name = {"minmax": "min-max score fusion", "zscore": "z-score (distribution-based) score fusion",
                "rrf": f"reciprocal-rank fusion (k={self.rrf_k})"}[self.method]
        return (f"{name}, dense {self.dense_weight:g} / BM25 {1 - self.dense_weight:g}, "
                f"top {self.candidates} of each")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping) -> Fusion:
        return cls(**{key: record[key] for key in ("method", "dense_weight", "candidates", "rrf_k") if key in record})


def _normalised(scores: Sequence[float], method: str) -> list[float]:
    if not scores:
        return []
    if method == "minmax":
        low, high = min(scores), max(scores)
    else:
        mean = sum(scores) / len(scores)
        spread = 3 * (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        low, high = mean - spread, mean + spread
    if high == low:
        # LlamaIndex's rule for a list whose scores are all equal.
        return [1.0 if high > 0 else 0.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def fuse_lists(ranked: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float], method: str = "minmax",
               candidates: int = 100, rrf_k: int = 60) -> list[tuple[str, float]]:
    """Fuse ranked lists (each ``[(doc_id, score), ...]``, best first) with one weight per list; best first.

    Each list is cut to ``candidates`` before normalising, as the ecosystems' retrievers return that many.
    """
    check_fusion_method(method)
    if len(weights) != len(ranked):
        raise ValueError(f"{len(weights)} weights for {len(ranked)} runs. Fix: one weight per run.")
    fused: dict[str, float] = {}
    for weight, docs in zip(weights, ranked):
        docs = list(docs)[:candidates]
        if method == "rrf":
            contributions = [weight / (rrf_k + rank) for rank in range(1, len(docs) + 1)]
        else:
            contributions = [weight * value for value in _normalised([score for _, score in docs], method)]
        for (doc, _), value in zip(docs, contributions):
            fused[doc] = fused.get(doc, 0.0) + value
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)


def fuse_ranked(dense: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]],
                fusion: Fusion) -> list[tuple[str, float]]:
    """The hybrid ranking of a dense and a BM25 ranked list (``[(doc_id, score), ...]``, best first) by ``fusion``."""
    return fuse_lists([dense, lexical], fusion.weights, fusion.method, fusion.candidates, fusion.rrf_k)
