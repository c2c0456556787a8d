"""Paired comparison of two runs on the same STS pairs: the difference of their Spearman scores (per task and of
the task average) with a paired percentile-bootstrap interval.

Both runs are resampled with the *same* pair indices, so the pair-to-pair difficulty they share cancels out and
the interval is much narrower than comparing two separate intervals.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from metaeol_integrations.errors import IncomparableRunsError


@dataclass(frozen=True)
class STSPredictions:
    """One run's similarities on one STS task: which pairs (indices into the full task), their gold scores, and the
    predicted similarity of each."""

    task: str
    indices: np.ndarray
    gold: np.ndarray
    predicted: np.ndarray


@dataclass(frozen=True)
class Difference:
    """Score of A minus score of B (Spearman x100) with its paired bootstrap interval."""

    name: str
    n: int
    score_a: float
    score_b: float
    difference: float
    ci_low: float
    ci_high: float

    @property
    def excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


@dataclass(frozen=True)
class PairedComparison:
    """A against B: one :class:`Difference` per task and one for the average over the tasks."""

    label_a: str
    label_b: str
    tasks: list[Difference]
    average: Difference
    resamples: int
    seed: int
    level: float

    def verdict(self) -> str:
        """'A beats B' / 'B beats A' only when the interval of the average difference excludes 0."""
        if not self.average.excludes_zero:
            return f"no difference shown between {self.label_a} and {self.label_b} (interval includes 0)"
        winner, loser = (self.label_a, self.label_b) if self.average.difference > 0 else (self.label_b, self.label_a)
        return f"{winner} beats {loser}"

    def to_dict(self) -> dict:
        record = asdict(self)
        record["verdict"] = self.verdict()
        return record


def spearman_rows(predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Spearman x100 of each row of ``predicted`` against the same row of ``gold`` (average ranks for ties)."""
    ranks_p = rankdata(predicted, axis=-1)
    ranks_g = rankdata(gold, axis=-1)
    ranks_p = ranks_p - ranks_p.mean(axis=-1, keepdims=True)
    ranks_g = ranks_g - ranks_g.mean(axis=-1, keepdims=True)
    numerator = (ranks_p * ranks_g).sum(axis=-1)
    denominator = np.sqrt((ranks_p**2).sum(axis=-1) * (ranks_g**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator * 100


def _check_same_pairs(a: Sequence[STSPredictions], b: Sequence[STSPredictions]) -> None:
    names_a, names_b = [p.task for p in a], [p.task for p in b]
    if names_a != names_b:
        raise IncomparableRunsError(
            f"The runs cover different STS tasks ({names_a} vs {names_b}). Fix: compare runs of the same tasks, or "
            "pass the shared ones with --tasks."
        )
    for first, second in zip(a, b):
        if not (np.array_equal(first.indices, second.indices) and np.allclose(first.gold, second.gold)):
            raise IncomparableRunsError(
                f"{first.task}: the runs scored different pairs (another --sts-limit or --seed). Fix: re-run one of "
                "them with the other's sample size and seed; a paired comparison needs the same pairs."
            )


def paired_bootstrap(
    a: Sequence[STSPredictions], b: Sequence[STSPredictions], label_a: str = "A", label_b: str = "B",
    resamples: int = 1000, seed: int = 0, level: float = 0.95,
) -> PairedComparison:
    """Paired percentile bootstrap of score(A) - score(B), per task and for the average over the tasks.

    For each task, ``resamples`` index vectors are drawn with replacement (task by task, in the given order, each as
    ``rng.integers(0, n, size=(resamples, n))``); A and B are scored on the same indices. A resample's average
    difference is the mean over tasks of its per-task differences, as the reported average is the mean of task
    scores.
    """
    if not a:
        raise IncomparableRunsError("No STS task to compare. Fix: give runs that contain STS results.")
    _check_same_pairs(a, b)
    if resamples < 1:
        raise ValueError("resamples must be at least 1.")
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2 * 100
    tasks, resampled_diffs = [], []
    for first, second in zip(a, b):
        n = len(first.gold)
        draws = rng.integers(0, n, size=(resamples, n))
        gold = first.gold[draws]
        diffs = spearman_rows(first.predicted[draws], gold) - spearman_rows(second.predicted[draws], gold)
        resampled_diffs.append(diffs)
        score_a = float(spearman_rows(first.predicted, first.gold))
        score_b = float(spearman_rows(second.predicted, second.gold))
        low, high = np.percentile(diffs, [tail, 100 - tail])
        tasks.append(Difference(first.task, n, score_a, score_b, score_a - score_b, float(low), float(high)))
    average_diffs = np.mean(resampled_diffs, axis=0)
    low, high = np.percentile(average_diffs, [tail, 100 - tail])
    mean_a = float(np.mean([t.score_a for t in tasks]))
    mean_b = float(np.mean([t.score_b for t in tasks]))
    average = Difference("average", sum(t.n for t in tasks), mean_a, mean_b, mean_a - mean_b, float(low), float(high))
    return PairedComparison(label_a, label_b, tasks, average, resamples, seed, level)


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


@dataclass(frozen=True)
class QueryScores:
    """One retrieval run's per-query metrics (x100), ``values[metric][i]`` for ``query_ids[i]``."""

    task: str
    query_ids: list[str]
    values: dict[str, np.ndarray]
    main: str


def paired_query_bootstrap(
    a: QueryScores, b: QueryScores, label_a: str = "A", label_b: str = "B", resamples: int = 1000, seed: int = 0,
    level: float = 0.95, names: dict[str, str] | None = None,
) -> PairedComparison:
    """Paired percentile bootstrap of mean(A) - mean(B) over the same queries, one row per metric.

    The queries are resampled once (``rng.integers(0, n, size=(resamples, n))``) and every metric is scored on the
    same draws; the row that decides the verdict (``average``) is the main metric (nDCG@10).
    """
    if a.task != b.task or sorted(a.query_ids) != sorted(b.query_ids) or set(a.values) != set(b.values):
        raise IncomparableRunsError(
            f"The runs scored different queries or metrics ({a.task}: {len(a.query_ids)} queries vs {b.task}: "
            f"{len(b.query_ids)}). Fix: re-run one with the other's task, --split, --queries, --corpus-sample and seed."
        )
    if resamples < 1:
        raise ValueError("resamples must be at least 1.")
    order = {query: i for i, query in enumerate(b.query_ids)}
    aligned = [order[query] for query in a.query_ids]
    n = len(a.query_ids)
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    tail = (1 - level) / 2 * 100
    rows = []
    for metric, values_a in a.values.items():
        diffs = values_a - b.values[metric][aligned]
        low, high = np.percentile(diffs[draws].mean(axis=1), [tail, 100 - tail])
        name = (names or {}).get(metric, metric)
        rows.append(Difference(name, n, float(values_a.mean()), float(b.values[metric].mean()), float(diffs.mean()),
                               float(low), float(high)))
    main = next(row for row, metric in zip(rows, a.values) if metric == a.main)
    return PairedComparison(label_a, label_b, rows, main, resamples, seed, level)


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
    from metaeol_integrations.evaluation.doc_pairs import compare_pair_results

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
