"""Comparing two ``metaeol eval`` result files: read each file's per-pair or per-query scores and run the paired
bootstrap of :mod:`~metaeol_integrations.evaluation.paired` (STS pairs, retrieval queries) or
:mod:`~metaeol_integrations.evaluation.doc_pairs` (document pairs) on them. What ``metaeol eval compare`` runs."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metaeol_integrations.errors import IncomparableRunsError
from metaeol_integrations.evaluation.doc_pairs import compare_pair_results
from metaeol_integrations.evaluation.paired import (
    PairedComparison,
    QueryScores,
    STSPredictions,
    paired_bootstrap,
    paired_query_bootstrap,
)


def read_run_predictions(path: str | os.PathLike, tasks: Sequence[str] | None = None) -> tuple[str, list[STSPredictions]]:
    """The label and per-task STS predictions stored in a ``metaeol eval`` JSON file (optionally only ``tasks``)."""
    file = Path(path)
    label, results = _read_record(file)
    predictions = []
    for result in results:
        if result.get("kind") != "sts" or (tasks and result["task"] not in tasks):
            continue
        if result.get("predictions") is None:
            raise IncomparableRunsError(
                f"{str(file)!r} has no per-pair predictions for {result['task']} (written by an older version). "
                "Fix: re-run `metaeol eval`; cached embeddings make this fast."
            )
        predictions.append(STSPredictions(
            result["task"], np.asarray(result["pair_indices"]), np.asarray(result["gold"], dtype=np.float64),
            np.asarray(result["predictions"], dtype=np.float64),
        ))
    return label, predictions


def _read_record(path: str | os.PathLike) -> tuple[str, list[dict]]:
    file = Path(path)
    if not file.is_file():
        raise IncomparableRunsError(f"No run file {str(file)!r}. Fix: give the JSON file that `metaeol eval` wrote.")
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
        return record["meta"].get("label", file.stem), list(record["results"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise IncomparableRunsError(
            f"{str(file)!r} is not a `metaeol eval` result file ({error}). Fix: give the JSON file it wrote."
        ) from error


def read_query_scores(path: str | os.PathLike) -> tuple[str, QueryScores]:
    """The label and per-query metrics stored in a ``metaeol eval retrieval`` JSON file."""
    label, results = _read_record(path)
    found = [r for r in results if r.get("kind") == "retrieval"]
    if len(found) != 1:
        raise IncomparableRunsError(f"{str(path)!r} holds no single retrieval result. Fix: give the JSON file that "
                                    "`metaeol eval retrieval` wrote.")
    result = found[0]
    query_ids = list(result["per_query"])
    metrics = list(result["scores"])
    values = {m: np.asarray([result["per_query"][q][m] for q in query_ids], dtype=np.float64) for m in metrics}
    main = "ndcg_at_10" if "ndcg_at_10" in values else metrics[0]
    return label, QueryScores(f"{result['task']} ({result['split']}, {result['n_documents']} docs)", query_ids,
                              values, main)


def _kinds(path: str | os.PathLike) -> set[str | None]:
    return {result.get("kind") for result in _read_record(path)[1]}


def _doc_pairs(path: str | os.PathLike) -> tuple[str, dict]:
    label, results = _read_record(path)
    if len(results) != 1 or results[0].get("kind") != "doc-pairs":
        raise IncomparableRunsError(f"{str(path)!r} is not an `eval doc-pairs` result, the other run is. Fix: compare "
                                    "two files written by `metaeol eval doc-pairs`.")
    return label, results[0]


def _compare_doc_pairs(a: dict, b: dict, label_a: str, label_b: str, resamples: int, seed: int,
                       level: float) -> PairedComparison:
    difference = compare_pair_results(a, b, resamples=resamples, seed=seed, level=level)
    return PairedComparison(label_a, label_b, [difference], difference, resamples, seed, level)


def compare_runs(
    path_a: str | os.PathLike, path_b: str | os.PathLike, tasks: Sequence[str] | None = None,
    resamples: int = 1000, seed: int = 0, level: float = 0.95,
) -> PairedComparison:
    """Paired bootstrap comparison of two ``metaeol eval`` JSON files: on their shared STS pairs, for retrieval runs
    over their shared queries (per metric; the verdict follows nDCG@10), for ``doc-pairs`` runs over their document
    pairs (AUC)."""
    kinds = _kinds(path_a) | _kinds(path_b)
    if "doc-pairs" in kinds:
        (label_a, a), (label_b, b) = _doc_pairs(path_a), _doc_pairs(path_b)
        compare = lambda la, lb: _compare_doc_pairs(a, b, la, lb, resamples=resamples, seed=seed, level=level)  # noqa: E731
    elif "retrieval" in kinds:
        from metaeol_integrations.evaluation.retrieval import METRIC_NAMES

        (label_a, a), (label_b, b) = read_query_scores(path_a), read_query_scores(path_b)
        compare = lambda la, lb: paired_query_bootstrap(a, b, la, lb, resamples=resamples, seed=seed, level=level,  # noqa: E731
                                                        names=METRIC_NAMES)
    else:
        label_a, sts_a = read_run_predictions(path_a, tasks)
        label_b, sts_b = read_run_predictions(path_b, tasks)
        compare = lambda la, lb: paired_bootstrap(sts_a, sts_b, la, lb, resamples=resamples, seed=seed, level=level)  # noqa: E731
    if label_a == label_b:
        label_a, label_b = f"{label_a} ({Path(path_a).name})", f"{label_b} ({Path(path_b).name})"
    return compare(label_a, label_b)


def comparison_table(comparison: PairedComparison) -> str:
    """Markdown: per task and average, A, B, A - B and its paired interval."""
    percent = f"{comparison.level:.0%}"
    lines = [f"| task | N | {comparison.label_a} | {comparison.label_b} | A - B | paired {percent} CI |",
             "|---|---|---|---|---|---|"]
    # A retrieval comparison decides on one of its metric rows; print that row once.
    extra = [] if comparison.average in comparison.tasks else [comparison.average]
    for row in [*comparison.tasks, *extra]:
        mark = " *" if row.excludes_zero else ""
        lines.append(f"| {row.name} | {row.n:,} | {row.score_a:.2f} | {row.score_b:.2f} | {row.difference:+.2f}{mark} "
                     f"| [{row.ci_low:+.2f}, {row.ci_high:+.2f}] |")
    return "\n".join(lines)
