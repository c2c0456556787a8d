"""Pseudo-relevance feedback on vectors (Rocchio): each query vector moved towards the mean of its top documents'
vectors, then the corpus searched again. Training-free and without a second LLM pass: the document vectors are the
ones already indexed. The top documents may come from the dense pass itself or from another ranking (BM25's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def rocchio(queries: np.ndarray, documents: np.ndarray, feedback: Sequence[Sequence[int]],
            weight: float) -> np.ndarray:
    """``unit(q) + weight * mean(unit(d) for d in feedback[i])`` for each query ``i`` (no feedback: ``unit(q)``).

    ``feedback[i]`` holds row indices of ``documents``, the top documents of query ``i``.
    """
    if len(feedback) != len(queries):
        raise ValueError(f"{len(feedback)} feedback lists for {len(queries)} queries.")
    q, d = _unit(queries), _unit(documents)
    moved = q.copy()
    for i, rows in enumerate(feedback):
        if len(rows):
            moved[i] += weight * d[list(rows)].mean(axis=0)
    return moved


def top_rows(run: Mapping[str, Mapping[str, float]], query_ids: Sequence[str], doc_ids: Sequence[str],
             depth: int) -> list[list[int]]:
    """Each query's best ``depth`` documents in ``run`` (score descending, ties by document id descending, as
    trec_eval orders them) as row indices of ``doc_ids``."""
    position = {doc: j for j, doc in enumerate(doc_ids)}
    rows = []
    for query in query_ids:
        ranked = sorted(run.get(query, {}).items(), key=lambda item: (item[1], item[0]), reverse=True)
        rows.append([position[doc] for doc, _ in ranked[:depth] if doc in position])
    return rows
