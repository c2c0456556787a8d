"""Document-level similarity from a BEIR set's judgements: do two abstracts judged directly relevant to the same
question get a higher cosine than two abstracts that share no question?

No paragraph-level similarity set with human scores ships with the project's data, so one is derived from the
retrieval judgements (NFCorpus grades 2 = directly cited for a question, 1 = indirectly): *related* pairs are two
different documents both judged at ``min_grade`` or above for one query, *unrelated* pairs are two documents from
the same pool that no query judges together at any grade. Drawing both kinds from one pool of documents keeps length
and style out of the comparison: only what the pair shares differs. The score is ROC AUC x100 (the chance that a
related pair's cosine beats an unrelated pair's); two models are compared on the same pairs by a stratified paired
bootstrap.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from metaeol_integrations.errors import IncomparableRunsError
from metaeol_integrations.evaluation.beir import RetrievalData
from metaeol_integrations.evaluation.paired import Difference
from metaeol_integrations.evaluation.retrieval import cosine_scores


@dataclass(frozen=True)
class DocumentPairs:
    """Pairs of documents (``first[i]``, ``second[i]``: ids) labelled related or not, over a pool of documents."""

    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    first: list[str]
    second: list[str]
    related: np.ndarray

    def __len__(self) -> int:
        return len(self.first)


def _queries_of(data: RetrievalData) -> dict[str, set[str]]:
    judged: dict[str, set[str]] = {}
    for query, docs in data.qrels.items():
        for doc, grade in docs.items():
            if grade > 0:
                judged.setdefault(doc, set()).add(query)
    return judged


def document_pairs(data: RetrievalData, n_related: int = 200, min_grade: int = 2, seed: int = 0) -> DocumentPairs:
    """``n_related`` seeded related pairs (both documents judged ``>= min_grade`` for one query) and as many
    unrelated pairs drawn from the same documents (no query judges both at any grade)."""
    if min_grade < 1:
        raise ValueError(f"min_grade must be at least 1 (a judged-relevant grade), not {min_grade}. Fix: e.g. 2.")
    candidates = sorted({
        tuple(sorted(pair))
        for docs in data.qrels.values()
        for pair in itertools.combinations(sorted(d for d, g in docs.items() if g >= min_grade), 2)
    })
    if len(candidates) < n_related:
        raise ValueError(f"{data.name} has {len(candidates)} document pairs judged >= {min_grade} for one query, "
                         f"fewer than {n_related}. Fix: ask for fewer pairs or a lower min_grade.")
    rng = np.random.default_rng(seed)
    related = [candidates[i] for i in sorted(rng.choice(len(candidates), n_related, replace=False))]
    pool = sorted({doc for pair in related for doc in pair})
    queries_of = _queries_of(data)
    possible = [(a, b) for a, b in itertools.combinations(pool, 2) if not queries_of[a] & queries_of[b]]
    if len(possible) < n_related:
        raise ValueError(f"Only {len(possible)} unrelated pairs among the {len(pool)} documents of the related "
                         f"pairs. Fix: ask for more pairs, so the pool grows.")
    unrelated = [possible[i] for i in sorted(rng.choice(len(possible), n_related, replace=False))]
    text_of = dict(zip(data.doc_ids, data.doc_texts))
    pairs = related + unrelated
    return DocumentPairs(
        name=data.name, doc_ids=pool, doc_texts=[text_of[doc] for doc in pool],
        first=[a for a, _ in pairs], second=[b for _, b in pairs],
        related=np.array([True] * len(related) + [False] * len(unrelated)),
    )


def pair_cosines(pairs: DocumentPairs, vectors: np.ndarray) -> np.ndarray:
    """Cosine of each pair, from one vector per document of ``pairs.doc_ids`` (float64)."""
    row = {doc: i for i, doc in enumerate(pairs.doc_ids)}
    return cosine_scores(vectors, vectors)[[row[doc] for doc in pairs.first], [row[doc] for doc in pairs.second]]


def pair_scores(cosines: np.ndarray, related: np.ndarray) -> dict[str, float]:
    """ROC AUC x100 (main), and the mean cosine of related and of unrelated pairs."""
    return {
        "auc": 100 * float(roc_auc_score(related, cosines)),
        "mean_cosine_related": float(cosines[related].mean()),
        "mean_cosine_unrelated": float(cosines[~related].mean()),
    }


def paired_auc_bootstrap(cosines_a: np.ndarray, cosines_b: np.ndarray, related: np.ndarray, resamples: int = 1000,
                         seed: int = 0, level: float = 0.95) -> Difference:
    """AUC(A) - AUC(B) on the same pairs, with a percentile interval from resampling the related and the unrelated
    pairs separately (so every draw keeps both classes at their sizes) with the same draws for A and B."""
    if resamples < 1:
        raise ValueError("resamples must be at least 1.")
    rng = np.random.default_rng(seed)
    positive, negative = np.flatnonzero(related), np.flatnonzero(~related)
    labels = np.r_[np.ones(len(positive), bool), np.zeros(len(negative), bool)]
    diffs = np.empty(resamples)
    for r in range(resamples):
        draw = np.r_[rng.choice(positive, len(positive)), rng.choice(negative, len(negative))]
        diffs[r] = 100 * (roc_auc_score(labels, cosines_a[draw]) - roc_auc_score(labels, cosines_b[draw]))
    a, b = pair_scores(cosines_a, related)["auc"], pair_scores(cosines_b, related)["auc"]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return Difference("AUC", len(related), a, b, a - b, float(low), float(high))


def write_pair_results(out_dir: str | os.PathLike, stem: str, pairs: DocumentPairs, cosines: np.ndarray,
                       scores: Mapping[str, float], meta: Mapping[str, Any]) -> tuple[Path, Path]:
    """``<stem>.json`` (``scores`` from :func:`pair_scores`, every pair with its cosine, meta) and ``<stem>.md``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "kind": "doc-pairs", "task": pairs.name, "n_related": int(pairs.related.sum()),
        "n_unrelated": int((~pairs.related).sum()), "n_documents": len(pairs.doc_ids), "scores": dict(scores),
        "pairs": [{"first": a, "second": b, "related": bool(r), "cosine": float(c)}
                  for a, b, r, c in zip(pairs.first, pairs.second, pairs.related, cosines)],
    }
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(json.dumps({"meta": dict(meta), "results": [result]}, indent=1), encoding="utf-8")
    md_path.write_text(
        f"# {meta.get('label', stem)}\n\n{pairs.name} document pairs: {result['n_related']} related (both judged "
        f">= {meta.get('min_grade', '?')} for one query) + {result['n_unrelated']} unrelated, "
        f"{result['n_documents']} documents\n\n| AUC | mean cosine related | mean cosine unrelated |\n|---|---|---|\n"
        f"| {scores['auc']:.2f} | {scores['mean_cosine_related']:.3f} | {scores['mean_cosine_unrelated']:.3f} |\n",
        encoding="utf-8")
    return json_path, md_path


def read_pair_cosines(result: Mapping[str, Any]) -> tuple[list[tuple[str, str, bool]], np.ndarray]:
    """The pairs (first, second, related) and cosines of one ``doc-pairs`` result."""
    pairs = [(p["first"], p["second"], bool(p["related"])) for p in result["pairs"]]
    return pairs, np.asarray([p["cosine"] for p in result["pairs"]], dtype=np.float64)


def compare_pair_results(a: Mapping[str, Any], b: Mapping[str, Any], resamples: int = 1000, seed: int = 0,
                         level: float = 0.95) -> Difference:
    """AUC(A) - AUC(B) of two stored ``doc-pairs`` results, which must have scored the same pairs."""
    (pairs_a, cosines_a), (pairs_b, cosines_b) = read_pair_cosines(a), read_pair_cosines(b)
    if pairs_a != pairs_b:
        raise IncomparableRunsError(f"The runs scored different document pairs ({len(pairs_a)} vs {len(pairs_b)}). "
                                    "Fix: re-run one with the other's task, --pairs, --min-grade and --seed.")
    related = np.array([r for _, _, r in pairs_a])
    return paired_auc_bootstrap(cosines_a, cosines_b, related, resamples=resamples, seed=seed, level=level)
