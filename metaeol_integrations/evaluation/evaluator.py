"""Run STS and transfer tasks for one encoder, with samples, the embedding cache, and layer/prompt views."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from metaeol_integrations.evaluation import data as senteval
from metaeol_integrations.evaluation.cache import EmbeddingCache
from metaeol_integrations.evaluation.encoders import Encoder
from metaeol_integrations.evaluation.sampling import stratified_indices
from metaeol_integrations.evaluation.sts import bootstrap_interval, cosine_similarities, spearman_x100
from metaeol_integrations.evaluation.transfer import (
    dev_selected_accuracy,
    kfold_accuracy,
    pair_features,
    train_test_accuracy,
)

logger = logging.getLogger(__name__)

DEFAULT_STS_LIMIT = 200
ENGLISH_THRESHOLD = 0.5
DEFAULT_TRANSFER_LIMIT = 500


@dataclass(frozen=True)
class EvalConfig:
    """How to run: where the data is, sample sizes (0 = full data), seed, cache folder, bootstrap resamples."""

    data_dir: str | os.PathLike | None = None
    sts_limit: int = DEFAULT_STS_LIMIT
    transfer_limit: int = DEFAULT_TRANSFER_LIMIT
    seed: int = 0
    cache_dir: str | os.PathLike | None = None
    bootstrap_resamples: int = 1000
    show_progress: bool = True


@dataclass(frozen=True)
class View:
    """Which vector a task scores: the model's own (default), one layer's prompt mean, or a subset of prompts.

    ``layer`` uses ``hidden_states`` numbering (``-1`` = last); ``prompts`` are indices into the template set.
    """

    layer: int | None = None
    prompts: tuple[int, ...] | None = None

    def select(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        if self.layer is not None and self.prompts is not None:
            raise ValueError("Choose a layer or a prompt subset, not both.")
        if self.layer is not None:
            if "layers" not in arrays:
                raise ValueError("This encoder has no per-layer vectors. Fix: drop --layer for non-MetaEOL models.")
            layers = arrays["layers"]
            return layers[:, self.layer % layers.shape[1]]
        if self.prompts is not None:
            if "prompts" not in arrays:
                raise ValueError("This encoder has no per-prompt vectors.")
            return arrays["prompts"][:, list(self.prompts)].mean(axis=1)
        return arrays["embedding"]


@dataclass
class TaskResult:
    """One task's score (Spearman x100 for STS, accuracy x100 for transfer) and how it was obtained."""

    task: str
    kind: str
    score: float
    n: int
    n_total: int
    ci_low: float | None = None
    ci_high: float | None = None
    seconds: float = 0.0
    texts_embedded: int = 0
    protocol: str = ""
    # STS only: the scored pairs (indices into the full task), their gold scores and the predicted similarities,
    # so two runs can be compared pair by pair (metaeol_integrations.evaluation.paired).
    pair_indices: list[int] | None = None
    gold: list[float] | None = None
    predictions: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evaluator:
    """Scores one encoder on SentEval tasks; embeddings go through the on-disk cache."""

    encoder: Encoder
    config: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        self.cache = EmbeddingCache(self.config.cache_dir, self.encoder.identity())
        self._sts: dict[str, tuple[senteval.STSData, int, np.ndarray]] = {}
        self.warnings: list[str] = []

    # -- embeddings ------------------------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], description: str = "Embedding") -> tuple[dict[str, np.ndarray], int]:
        """Arrays for ``texts`` and how many texts had to be computed (the rest came from the cache)."""
        texts = list(texts)
        missing = len({text for text in texts if text not in self.cache})
        arrays = self.cache.get_or_compute(
            texts, self.encoder.encode, description=description, show_progress=self.config.show_progress
        )
        return arrays, missing

    # -- data ------------------------------------------------------------------------------------------------------

    def sts_data(self, task: str) -> tuple[senteval.STSData, int]:
        """The (sampled) pairs of an STS task, stratified over its subsets, and the full task's size."""
        pairs, total, _ = self.sts_sample(task)
        return pairs, total

    def sts_sample(self, task: str) -> tuple[senteval.STSData, int, np.ndarray]:
        """:meth:`sts_data` plus the sampled pairs' indices into the full task."""
        if task not in self._sts:
            full = (
                senteval.read_sts_benchmark("dev", self.config.data_dir)
                if task == "STSBenchmark-dev"
                else senteval.read_sts(task, self.config.data_dir)
            )
            indices = stratified_indices(full.subsets, self.config.sts_limit, self.config.seed)
            self._sts[task] = (full.take(indices), len(full), indices)
            share = senteval.english_share(full.sentences1)
            if share < ENGLISH_THRESHOLD:
                self.warnings.append(
                    f"{task}: only {share:.0%} of the sentences look English; the paper's numbers are on English "
                    "SentEval files, so scores here are not comparable to them."
                )
                logger.warning(self.warnings[-1])
        return self._sts[task]

    # -- STS -------------------------------------------------------------------------------------------------------

    def sts_similarities(self, task: str, views: Sequence[View]) -> tuple[senteval.STSData, list[np.ndarray], int, int]:
        pairs, total = self.sts_data(task)
        arrays, computed = self.embed(pairs.sentences1 + pairs.sentences2, description=task)
        n = len(pairs)
        sims = [cosine_similarities(view.select(arrays)[:n], view.select(arrays)[n:]) for view in views]
        return pairs, sims, total, computed

    def run_sts(self, task: str, view: View = View(), interval: bool = True) -> TaskResult:
        start = time.perf_counter()
        pairs, (sims,), total, computed = self.sts_similarities(task, [view])
        low = high = None
        if interval and self.config.bootstrap_resamples > 0:
            low, high = bootstrap_interval(sims, pairs.scores, seed=self.config.seed,
                                           resamples=self.config.bootstrap_resamples)
        _, _, indices = self.sts_sample(task)
        return TaskResult(
            task, "sts", spearman_x100(sims, pairs.scores), len(pairs), total, low, high,
            time.perf_counter() - start, computed, "cosine, Spearman x100 over all pairs (SentEval 'all')",
            pair_indices=[int(i) for i in indices], gold=[float(g) for g in pairs.scores],
            predictions=[float(p) for p in sims],
        )

    def sts_scores(self, task: str, views: Sequence[View]) -> list[float]:
        """Spearman x100 of one task for many views, from one set of cached arrays (for sweeps)."""
        pairs, sims, _, _ = self.sts_similarities(task, views)
        return [spearman_x100(s, pairs.scores) for s in sims]

    # -- transfer --------------------------------------------------------------------------------------------------

    def run_transfer(self, task: str, view: View = View()) -> TaskResult:
        start = time.perf_counter()
        data = senteval.read_transfer(task, self.config.data_dir)
        limit, seed = self.config.transfer_limit, self.config.seed
        total = sum(len(split.labels) for split in data.splits.values())
        sampled = 0 < limit < total
        if sampled:
            # Sample mode: pool the evaluation splits, draw a label-stratified sample, 10-fold CV inside it.
            pools = {"SST2": ("dev", "test"), "TREC": ("train", "test"), "MRPC": ("train", "test")}
            split = _concat([data.splits[name] for name in pools.get(task, ("all",))])
            indices = stratified_indices(split.labels, limit, seed)
            total = len(split.labels)
            split = _take(split, indices)
            features, computed = self._features(task, split, view)
            score = kfold_accuracy(features, split.labels, seed=seed)
            n, protocol = len(indices), f"label-stratified sample, 10-fold CV, C by inner CV (seed {seed})"
        elif "all" in data.splits:
            split = data.splits["all"]
            features, computed = self._features(task, split, view)
            score = kfold_accuracy(features, split.labels, seed=seed)
            n, protocol = len(split.labels), "10-fold CV, C by inner 10-fold CV"
        elif task == "SST2":
            (train, c1), (dev, c2), (test, c3) = (self._features(task, data.splits[s], view) for s in ("train", "dev", "test"))
            score = dev_selected_accuracy(train, data.splits["train"].labels, dev, data.splits["dev"].labels,
                                          test, data.splits["test"].labels)
            n, computed, protocol = len(data.splits["test"].labels), c1 + c2 + c3, "train, C chosen on dev, test"
        else:
            (train, c1), (test, c2) = (self._features(task, data.splits[s], view) for s in ("train", "test"))
            score = train_test_accuracy(train, data.splits["train"].labels, test, data.splits["test"].labels, seed=seed)
            n, computed, protocol = len(data.splits["test"].labels), c1 + c2, "train (C by 10-fold CV), test"
        return TaskResult(task, "transfer", score, n, total, seconds=time.perf_counter() - start,
                          texts_embedded=computed, protocol=protocol)

    def _features(self, task: str, split: senteval.Split, view: View = View()) -> tuple[np.ndarray, int]:
        if split.texts2 is None:
            arrays, computed = self.embed(split.texts, description=task)
            return view.select(arrays), computed
        arrays, computed = self.embed(split.texts + split.texts2, description=task)
        vectors = view.select(arrays)
        n = len(split.texts)
        return pair_features(vectors[:n], vectors[n:]), computed


def _concat(splits: list[senteval.Split]) -> senteval.Split:
    texts2 = None if splits[0].texts2 is None else [t for s in splits for t in s.texts2]
    return senteval.Split([t for s in splits for t in s.texts], np.concatenate([s.labels for s in splits]), texts2)


def _take(split: senteval.Split, indices: np.ndarray) -> senteval.Split:
    texts2 = None if split.texts2 is None else [split.texts2[i] for i in indices]
    return senteval.Split([split.texts[i] for i in indices], split.labels[indices], texts2)

