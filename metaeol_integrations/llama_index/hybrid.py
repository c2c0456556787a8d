"""Hybrid (dense + BM25) retrieval for LlamaIndex, fused the way this project measured it.

:func:`hybrid_retriever` returns LlamaIndex's own ``QueryFusionRetriever`` over a ``VectorStoreIndex`` retriever and
``llama_index.retrievers.bm25.BM25Retriever`` (bm25s with Snowball stemming and English stop words: the BM25 the
harness scores), in the mode that computes the chosen fusion (``relative_score`` for min-max, ``dist_based_score``
for z-score) with its weights and ``num_queries=1`` (no LLM writes extra queries). Its ``reciprocal_rerank`` mode
ignores weights, so weighted RRF is :class:`WeightedRRFFusionRetriever`, the same class with that one step weighted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.retrievers import QueryFusionRetriever
from llama_index.core.schema import BaseNode, Document, NodeWithScore

from metaeol_integrations.hybrid.choice import resolve_fusion
from metaeol_integrations.hybrid.fusion import LLAMA_INDEX_MODES, Fusion, fuse_lists
from metaeol_integrations.presets import DEFAULT_PRESET


class WeightedRRFFusionRetriever(QueryFusionRetriever):
    """``QueryFusionRetriever`` whose reciprocal-rank step is weighted: sum of weight / (k + rank), ranks from 1
    (LangChain's ``EnsembleRetriever`` formula), so weighted RRF means the same in both ecosystems."""

    def __init__(self, *args: Any, rrf_k: int = 60, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rrf_k = rrf_k

    def _reciprocal_rerank_fusion(self, results: dict[tuple[str, int], list[NodeWithScore]]) -> list[NodeWithScore]:
        first: dict[str, NodeWithScore] = {}
        ranked, weights = [], []
        for (_, retriever), nodes in results.items():
            nodes = sorted(nodes, key=lambda node: node.score or 0.0, reverse=True)
            for node in nodes:
                first.setdefault(node.node.hash, node)
            ranked.append([(node.node.hash, node.score or 0.0) for node in nodes])
            weights.append(self._retriever_weights[retriever])
        # Every node each retriever returned takes part: they were asked for fusion.candidates already.
        fused = fuse_lists(ranked, weights, "rrf", candidates=max(map(len, ranked), default=1), rrf_k=self.rrf_k)
        return [NodeWithScore(node=first[key].node, score=score) for key, score in fused]


def hybrid_retriever(nodes: Sequence[BaseNode | str], model: str = DEFAULT_PRESET, similarity_top_k: int = 10, *,
                     embed_model: BaseEmbedding | None = None, fusion: Fusion | str | None = None,
                     weights: Sequence[float] | None = None, **embedding_kwargs: Any) -> QueryFusionRetriever:
    """A LlamaIndex retriever fusing MetaEOL vectors with BM25 by ``model``'s measured fusion (a preset's
    ``fusion``, else :data:`~metaeol_integrations.presets.DEFAULT_FUSION`).

    ``nodes``: nodes or strings (each string becomes a ``Document``). ``embed_model``: any LlamaIndex embedding instead
    of ``MetaEOLEmbedding(model, **embedding_kwargs)``. ``fusion`` / ``weights`` = (dense, BM25): overrides. Each side
    contributes its best ``fusion.candidates`` nodes; the fused list is cut to ``similarity_top_k``.
    """
    try:
        import Stemmer
        from llama_index.retrievers.bm25 import BM25Retriever
    except ImportError as error:
        raise ImportError('The BM25 side needs llama-index-retrievers-bm25. Fix: pip install '
                          '"metaeol-integrations[llama-index]"') from error
    nodes = [node if isinstance(node, BaseNode) else Document(text=node) for node in nodes]
    if not nodes:
        raise ValueError("hybrid_retriever needs at least one node.")
    chosen = resolve_fusion(model, fusion, weights)
    if embed_model is None:
        from metaeol_integrations.llama_index.embedding import MetaEOLEmbedding

        embed_model = MetaEOLEmbedding(model, **embedding_kwargs)
    candidates = min(chosen.candidates, len(nodes))
    dense = VectorStoreIndex(nodes, embed_model=embed_model).as_retriever(similarity_top_k=candidates)
    lexical = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=candidates, stemmer=Stemmer.Stemmer("english"),
                                          language="en")
    # MockLLM: num_queries=1 never calls it, and passing one keeps Settings.llm (OpenAI by default) out of it.
    common = {"similarity_top_k": similarity_top_k, "num_queries": 1, "use_async": False, "llm": MockLLM(),
              "retriever_weights": list(chosen.weights)}
    if chosen.method == "rrf":
        return WeightedRRFFusionRetriever([dense, lexical], mode="reciprocal_rerank", rrf_k=chosen.rrf_k, **common)
    return QueryFusionRetriever([dense, lexical], mode=LLAMA_INDEX_MODES[chosen.method], **common)
