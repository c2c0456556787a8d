"""Retrieval evaluation on BEIR sets: exact cosine search or BM25, scored by ``pytrec_eval`` (trec_eval's code).

Metrics are BEIR's and MTEB's: nDCG@10 (main), Recall@100 and MRR@10, each per query, so two runs on the same queries
can be compared query by query (:mod:`metaeol_integrations.evaluation.paired`). The run (each query's top 100
documents with scores) is kept in TREC format next to the JSON result so fusion and re-scoring need no re-embedding.
"""

from __future__ import annotations

import gzip
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metaeol_integrations._extras import missing_extra
from metaeol_integrations.core.chunking import split_into_windows, window_lengths
from metaeol_integrations.evaluation.beir import RetrievalData
from metaeol_integrations.evaluation.cache import EmbeddingCache
from metaeol_integrations.evaluation.encoders import Encoder
from metaeol_integrations.hybrid.fusion import fuse_lists
from metaeol_integrations.hybrid.lexical import BM25Index
from metaeol_integrations.postprocessing.center import check_center_mode, remove_mean

try:
    import pytrec_eval
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise missing_extra("eval", "pytrec_eval") from error

METRICS = ("ndcg_at_10", "recall_at_100", "mrr_at_10")
MAIN_METRIC = "ndcg_at_10"
METRIC_NAMES = {"ndcg_at_10": "nDCG@10", "recall_at_100": "Recall@100", "mrr_at_10": "MRR@10"}
RUN_DEPTH = 100

Run = dict[str, dict[str, float]]
"""``run[query_id][doc_id] = score`` (higher is better), as pytrec_eval takes it."""


def top_k_run(scores: np.ndarray, query_ids: list[str], doc_ids: list[str], k: int = RUN_DEPTH) -> Run:
    """Each query's ``k`` best documents from a (queries x documents) score matrix."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return {query: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, query in enumerate(query_ids)}


def cosine_scores(queries: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """Exact cosine similarity of every query with every document (float64, so ranks do not hinge on rounding)."""
    q = np.asarray(queries, dtype=np.float64)
    d = np.asarray(documents, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return q @ d.T


def _ranked(docs: Mapping[str, float]) -> list[str]:
    # trec_eval's order: score descending, ties by document id descending.
    return [doc for doc, _ in sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def score_run(run: Run, qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, float]]:
    """Per-query nDCG@10, Recall@100 and MRR@10 (x100) by ``pytrec_eval``; a query with no retrieved document
    scores 0 (trec_eval would skip it and so flatter the mean)."""
    judged = {query: dict(docs) for query, docs in qrels.items() if query in run}
    main = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    # MRR@10 is trec_eval's reciprocal rank on each query's first 10 documents in trec_eval's own order.
    top10 = {query: {doc: docs[doc] for doc in _ranked(docs)[:10]} for query, docs in run.items()}
    reciprocal = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top10)
    per_query = {}
    for query in judged:
        values = main.get(query, {})
        per_query[query] = {
            "ndcg_at_10": 100 * values.get("ndcg_cut_10", 0.0),
            "recall_at_100": 100 * values.get("recall_100", 0.0),
            "mrr_at_10": 100 * reciprocal.get(query, {}).get("recip_rank", 0.0),
        }
    return per_query


def write_trec_run(path: str | os.PathLike, run: Run, tag: str = "metaeol") -> Path:
    """Write ``run`` as a (gzip) TREC run file: ``query Q0 doc rank score tag``, best first."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as out:
        for query, docs in run.items():
            for rank, doc in enumerate(_ranked(docs), start=1):
                out.write(f"{query} Q0 {doc} {rank} {docs[doc]:.7g} {tag}\n")
    return path


def read_trec_run(path: str | os.PathLike) -> Run:
    """Read a TREC run file written by :func:`write_trec_run` (or any tool)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    run: Run = {}
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            query, _, doc, _, score, *_ = line.split()
            run.setdefault(query, {})[doc] = float(score)
    return run


@dataclass
class RetrievalResult:
    """Scores of one retriever on one query set and corpus, with each query's metrics and the run itself."""

    task: str
    split: str
    n_queries: int
    n_documents: int
    n_documents_total: int
    scores: dict[str, float]
    per_query: dict[str, dict[str, float]]
    seconds: float = 0.0
    texts_embedded: int = 0
    protocol: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    run: Run | None = field(default=None, repr=False)

    @classmethod
    def from_run(cls, run: Run, data: RetrievalData, **fields: Any) -> RetrievalResult:
        per_query = score_run(run, data.qrels)
        scores = {metric: float(np.mean([values[metric] for values in per_query.values()])) for metric in METRICS}
        fields.setdefault("n_documents", len(data.doc_ids))
        return cls(task=data.name, n_queries=len(per_query), scores=scores, per_query=per_query, run=run, **fields)

    def to_dict(self) -> dict:
        record = asdict(self)
        record.pop("run")
        record["kind"] = "retrieval"
        return record


class Retriever(ABC):
    """Ranks the corpus for each query; ``identity`` names what determines the ranking."""

    name: str

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything that determines the ranking."""

    @abstractmethod
    def retrieve(self, data: RetrievalData, k: int = RUN_DEPTH) -> tuple[Run, int]:
        """The top ``k`` documents per query, and how many texts had to be embedded (0 for lexical methods)."""


VectorTransform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(query vectors, document vectors) -> the same after a post-processing step (e.g. removing the corpus mean)."""


def embed_filter_projection(module: Any, tau: int) -> np.ndarray:
    """EmbedFilter's (k x d) projection for a MetaEOL module, as the harness applies it to cached vectors."""
    from metaeol_integrations.postprocessing import embed_filter

    return embed_filter(module, tau).linear.weight.detach().double().numpy()


@dataclass(frozen=True)
class PostProcessing:
    """Post-pooling steps the harness applies to cached vectors, so each is measured without re-embedding:
    EmbedFilter's projection (``projection``, k x d) and then removal of a mean: of the evaluated corpus's document
    vectors (``center="corpus"``) or of ``fit_vectors`` (``center="texts"``: documents of your choice), either the
    mean itself (``center_mode="subtract"``) or each vector's component along it (``"project"``). They compute what
    :func:`metaeol_integrations.add_embed_filter` and :func:`metaeol_integrations.fit_center` add to a model."""

    projection: np.ndarray | None = None
    center: str | None = None
    fit_vectors: np.ndarray | None = None
    center_mode: str = "subtract"

    def __post_init__(self) -> None:
        if self.center not in (None, "corpus", "texts"):
            raise ValueError(f"Unknown centering {self.center!r}. Fix: use 'corpus' or 'texts'.")
        if (self.center == "texts") != (self.fit_vectors is not None):
            raise ValueError("center='texts' needs fit_vectors (and only it uses them).")
        check_center_mode(self.center_mode)

    def __call__(self, queries: np.ndarray, documents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Kept beside the modules (postprocessing/) because it applies to cached vectors of any layer, so a grid
        # over layers x bands x centerings needs no re-embedding; tests check it against the modules.
        project = (lambda x: x) if self.projection is None else (lambda x: np.asarray(x, np.float64) @ self.projection.T)
        queries, documents = project(queries), project(documents)
        if self.center is not None:
            mean = (documents if self.center == "corpus" else project(self.fit_vectors)).mean(axis=0)
            queries, documents = (remove_mean(queries, mean, self.center_mode),
                                  remove_mean(documents, mean, self.center_mode))
        return queries, documents


class DenseRetriever(Retriever):
    """Exact cosine search over the whole corpus: queries via ``encode_query``, documents via ``encode_document``,
    both through the on-disk embedding cache (one cache per task, so query and document templates never mix).

    ``chunk_tokens``: a document longer than that many tokens is embedded as consecutive windows of that size, each
    prompted on its own, and its vector is the mean of the windows' vectors (chunked pooling); queries are whole.
    ``window_weighting="tokens"`` weighs each window by its token count instead, so a short last window counts for
    what it holds (a probe, docs/retrieval.md; the module's chunked pooling is the uniform mean)."""

    def __init__(self, encoder: Encoder, cache_dir: str | os.PathLike | None = None, select: Callable | None = None,
                 transform: VectorTransform | None = None, show_progress: bool = True,
                 chunk_tokens: int | None = None, window_weighting: str = "uniform") -> None:
        if window_weighting not in ("uniform", "tokens"):
            raise ValueError(f"window_weighting is 'uniform' or 'tokens', not {window_weighting!r}.")
        self.encoder, self.name = encoder, encoder.name
        self.window_weighting = window_weighting
        self.select = select or (lambda arrays: arrays["embedding"])
        self.transform, self.show_progress, self.chunk_tokens = transform, show_progress, chunk_tokens
        self.caches = {task: EmbeddingCache(cache_dir, {**encoder.identity(), "task": task})
                       for task in ("query", "document")}

    def identity(self) -> dict[str, Any]:
        return self.encoder.identity()

    def embed(self, texts: list[str], task: str) -> tuple[dict[str, np.ndarray], int]:
        """Arrays for ``texts`` encoded for ``task`` ("query" / "document"), and how many were not cached."""
        cache = self.caches[task]
        missing = len({text for text in texts if text not in cache})
        arrays = cache.get_or_compute(texts, lambda chunk: self.encoder.encode(chunk, task=task),
                                      chunk_size=64, description={"query": "queries", "document": "documents"}[task], show_progress=self.show_progress)
        return arrays, missing

    def document_vectors(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """One (selected) vector per document, chunk-pooled when ``chunk_tokens`` is set, and how many texts were
        computed rather than read from the cache."""
        if not self.chunk_tokens:
            arrays, computed = self.embed(texts, "document")
            return self.select(arrays), computed
        # A second chunked pooling beside the module's (core/chunking.py), kept because it caches each window with
        # every layer's vector, so a grid over layers and window weightings reuses one pass (tested equal to it).
        windows, counts = split_into_windows(texts, self.encoder.module.tokenizer, self.chunk_tokens)
        arrays, computed = self.embed(windows, "document")
        vectors = np.asarray(self.select(arrays), dtype=np.float64)
        if self.window_weighting == "tokens":
            tokenizer = self.encoder.module.tokenizer
            weights = np.asarray([n for text in texts for n in window_lengths(text, tokenizer, self.chunk_tokens)],
                                 dtype=np.float64)
        else:
            weights = np.ones(len(windows))
        bounds = np.cumsum([0, *counts])
        return np.stack([np.average(vectors[start:end], axis=0, weights=weights[start:end])
                         for start, end in zip(bounds[:-1], bounds[1:])]), computed

    def retrieve(self, data: RetrievalData, k: int = RUN_DEPTH) -> tuple[Run, int]:
        # Documents first: they are the long job, and the cache keeps each finished chunk if the run is stopped.
        d, computed_docs = self.document_vectors(data.doc_texts)
        queries, computed_queries = self.embed(data.query_texts, "query")
        q = self.select(queries)
        if self.transform is not None:
            q, d = self.transform(q, d)
        return top_k_run(cosine_scores(q, d), data.query_ids, data.doc_ids, k), computed_docs + computed_queries


@dataclass(frozen=True)
class BM25Retriever(Retriever):
    """BM25 from ``bm25s`` (Lucene's scoring, k1=1.5, b=0.75), English stop words, optionally Snowball stemming."""

    stemmed: bool = False
    name: str = "bm25"

    def identity(self) -> dict[str, Any]:
        import bm25s

        return {"kind": "bm25", "library": f"bm25s {bm25s.__version__}", "stopwords": "en",
                "stemmer": "snowball english" if self.stemmed else None}

    def retrieve(self, data: RetrievalData, k: int = RUN_DEPTH) -> tuple[Run, int]:
        hits = BM25Index(data.doc_texts, stemmed=self.stemmed).search(data.query_texts, k)
        run = {query: {data.doc_ids[j]: score for j, score in hits[i]} for i, query in enumerate(data.query_ids)}
        return run, 0


def evaluate_retrieval(retriever: Retriever, data: RetrievalData, *, split: str = "all",
                       n_documents_total: int | None = None, sampling: Mapping[str, Any] | None = None) -> RetrievalResult:
    """Run ``retriever`` on ``data`` and score the run."""
    start = time.perf_counter()
    run, computed = retriever.retrieve(data)
    protocol = ("exact cosine over the whole corpus" if isinstance(retriever, DenseRetriever) else "BM25 (bm25s)")
    return RetrievalResult.from_run(
        run, data, split=split, n_documents_total=n_documents_total or len(data.doc_ids),
        seconds=time.perf_counter() - start, texts_embedded=computed,
        protocol=f"{protocol}; pytrec_eval nDCG@10, Recall@100, MRR@10 (x100)", sampling=dict(sampling or {}),
    )


BM25_MODELS = {"bm25": False, "bm25-stemmed": True}
"""Lexical baselines by ``--model`` name -> whether they stem."""


def retriever_for(model: str, encoder: Encoder | None = None, *, cache_dir: str | os.PathLike | None = None,
                  layer: int | None = None, show_progress: bool = True, chunk_tokens: int | None = None,
                  window_weighting: str = "uniform") -> Retriever:
    """BM25 for ``bm25`` / ``bm25-stemmed``, else exact cosine search with ``encoder`` (``layer``: read that layer's
    prompt mean from the cached per-layer arrays instead of the model's own vector; ``window_weighting``: see
    ``DenseRetriever``)."""
    if model in BM25_MODELS:
        if layer is not None:
            raise ValueError("--layer applies to MetaEOL models, not BM25. Fix: drop --layer.")
        return BM25Retriever(stemmed=BM25_MODELS[model], name=model)
    if encoder is None:
        raise ValueError(f"{model!r} needs an encoder.")
    from metaeol_integrations.evaluation.evaluator import View

    if chunk_tokens and not hasattr(encoder, "module"):
        raise ValueError("Chunked pooling cuts documents with a MetaEOL model's tokenizer. Fix: use a MetaEOL model.")
    return DenseRetriever(encoder, cache_dir=cache_dir, select=View(layer=layer).select, show_progress=show_progress,
                          chunk_tokens=chunk_tokens, window_weighting=window_weighting)


def write_retrieval_results(out_dir: str | os.PathLike, stem: str, result: RetrievalResult,
                            meta: Mapping[str, Any]) -> tuple[Path, Path, Path]:
    """``<stem>.json`` (scores, per-query metrics, meta), ``<stem>.md`` (one table row) and ``<stem>.run.trec.gz``."""
    import json

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(json.dumps({"meta": dict(meta), "results": [result.to_dict()]}, indent=1), encoding="utf-8")
    header = " | ".join(METRIC_NAMES[m] for m in METRICS)
    cells = " | ".join(f"{result.scores[m]:.2f}" for m in METRICS)
    md_path.write_text(
        f"# {meta.get('label', stem)}\n\n{result.task}, {result.split} queries (N={result.n_queries}), "
        f"{result.n_documents:,} of {result.n_documents_total:,} documents; {result.protocol}\n\n"
        f"| {header} | seconds |\n|---|---|---|---|\n| {cells} | {result.seconds:.0f} |\n", encoding="utf-8")
    run_path = write_trec_run(folder / f"{stem}.run.trec.gz", result.run or {}, tag=str(meta.get("label", "run"))[:40].replace(" ", "_"))
    return json_path, md_path, run_path


def fuse_runs(runs: list[Run], method: str = "rrf", weights: list[float] | None = None, rrf_k: int = 60,
              candidates: int = RUN_DEPTH) -> Run:
    """Hybrid retrieval over stored runs, by the formulas the hybrid retrievers use
    (:mod:`metaeol_integrations.hybrid.fusion`): ``minmax`` / ``zscore`` convex score fusion or weighted ``rrf``
    (equal weights unless given). Each run contributes its best ``candidates`` documents (trec_eval's order); each
    query keeps its best :data:`RUN_DEPTH` fused documents."""
    if len({frozenset(run) for run in runs}) != 1:
        raise ValueError("The runs hold different queries. Fix: fuse runs of the same queries.")
    weights = list(weights or [1 / len(runs)] * len(runs))
    fused: Run = {}
    for query in runs[0]:
        ranked = [[(doc, run[query][doc]) for doc in _ranked(run[query])] for run in runs]
        fused[query] = dict(fuse_lists(ranked, weights, method, candidates, rrf_k)[:RUN_DEPTH])
    return fused
