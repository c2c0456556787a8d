"""Paired comparison of two runs on the same STS pairs: the difference of their Spearman scores (per task and of
the task average) with a paired percentile-bootstrap interval.

Both runs are resampled with the *same* pair indices, so the pair-to-pair difficulty they share cancels out and
the interval is much narrower than comparing two separate intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

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


def paired_per_query(a: Mapping[str, float], b: Mapping[str, float], queries: Sequence[str], task: str = "",
                     metric: str = "ndcg_at_10", resamples: int = 1000, seed: int = 0) -> Difference:
    """mean(A) - mean(B) of one per-query metric (``a[query]``, ``b[query]``) over ``queries``, with its paired
    bootstrap interval (:func:`paired_query_bootstrap` on that one metric)."""
    queries = list(queries)

    def scores(values: Mapping[str, float]) -> QueryScores:
        return QueryScores(task, queries, {metric: np.asarray([values[q] for q in queries], dtype=np.float64)}, metric)

    return paired_query_bootstrap(scores(a), scores(b), resamples=resamples, seed=seed).average
