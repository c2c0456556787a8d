"""Hybrid (dense + BM25) retrieval for LangChain, fused the way this project measured it.

:func:`hybrid_retriever` returns LangChain's own ``EnsembleRetriever`` when the fusion is weighted RRF (what it
computes) and otherwise a :class:`ScoreFusionRetriever` (convex fusion of normalised scores, which LangChain has no
class for). The BM25 side is :class:`BM25Retriever`: bm25s with Snowball stemming and English stop words, the BM25
the harness scores (``langchain_community``'s uses rank_bm25 on whitespace tokens).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from pydantic import ConfigDict, Field, PrivateAttr

from metaeol_integrations.hybrid.choice import resolve_fusion
from metaeol_integrations.hybrid.fusion import Fusion, fuse_ranked
from metaeol_integrations.hybrid.lexical import BM25Index
from metaeol_integrations.presets import DEFAULT_PRESET


def _key(document: Document) -> str:
    # Documents are matched across the two sides by id (hybrid_retriever gives every document one).
    return document.id if document.id is not None else document.page_content


class BM25Retriever(BaseRetriever):
    """BM25 over ``documents`` (bm25s, Lucene scoring, English stop words, Snowball stemming unless
    ``stemmed=False``); each returned document carries its score in ``metadata["bm25_score"]``."""

    documents: list[Document]
    k: int = Field(default=4, gt=0)
    stemmed: bool = True
    _index: BM25Index = PrivateAttr()

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def model_post_init(self, context: Any) -> None:
        self._index = BM25Index([document.page_content for document in self.documents], stemmed=self.stemmed)

    @classmethod
    def from_documents(cls, documents: Iterable[Document], **kwargs: Any) -> BM25Retriever:
        return cls(documents=list(documents), **kwargs)

    def scored(self, query: str, k: int | None = None) -> list[tuple[Document, float]]:
        """The ``k`` best documents with their BM25 scores, best first."""
        return [(self.documents[j], score) for j, score in self._index.search([query], k or self.k)[0]]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None) -> list[Document]:
        return [document.model_copy(update={"metadata": {**document.metadata, "bm25_score": score}})
                for document, score in self.scored(query, k)]


class ScoreFusionRetriever(BaseRetriever):
    """The convex fusion of a vector store's cosine scores and BM25's (``fusion.method`` ``minmax`` or ``zscore``),
    each side's best ``fusion.candidates`` documents; the fused score is in ``metadata["fusion_score"]``.

    The vector store's ``similarity_search_with_score`` must return cosine similarities (``InMemoryVectorStore``
    does); both sides must hold the same documents with the same ids.
    """

    vector_store: VectorStore
    lexical: BM25Retriever
    fusion: Fusion
    k: int = Field(default=10, gt=0)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None) -> list[Document]:
        dense = self.vector_store.similarity_search_with_score(query, k=self.fusion.candidates)
        lexical = self.lexical.scored(query, self.fusion.candidates)
        by_key = {_key(document): document for document, _ in [*dense, *lexical]}
        fused = fuse_ranked([(_key(d), s) for d, s in dense], [(_key(d), s) for d, s in lexical], self.fusion)
        return [by_key[key].model_copy(update={"metadata": {**by_key[key].metadata, "fusion_score": score}})
                for key, score in fused[: k or self.k]]


def hybrid_retriever(documents: Iterable[Document | str], model: str = DEFAULT_PRESET, k: int = 10, *,
                     embeddings: Embeddings | None = None, fusion: Fusion | str | None = None,
                     weights: Sequence[float] | None = None, vector_store: type[VectorStore] = InMemoryVectorStore,
                     **embeddings_kwargs: Any) -> BaseRetriever:
    """A LangChain retriever fusing MetaEOL vectors with BM25 by ``model``'s measured fusion (a preset's
    ``fusion``, else :data:`~metaeol_integrations.presets.DEFAULT_FUSION`).

    ``documents``: ``Document`` objects or strings (a document without an id gets its position as id).
    ``embeddings``: any LangChain ``Embeddings`` instead of ``MetaEOLEmbeddings(model=model, **embeddings_kwargs)``.
    ``fusion`` / ``weights``: overrides (see :func:`resolve_fusion`). Weighted RRF returns LangChain's
    ``EnsembleRetriever`` (it returns every fused document; the first ``k`` are the hybrid's top k).
    """
    docs = [document if isinstance(document, Document) else Document(page_content=document)
            for document in documents]
    if not docs:
        raise ValueError("hybrid_retriever needs at least one document.")
    docs = [document if document.id is not None else document.model_copy(update={"id": str(i)})
            for i, document in enumerate(docs)]
    chosen = resolve_fusion(model, fusion, weights)
    if embeddings is None:
        from metaeol_integrations.langchain.embeddings import MetaEOLEmbeddings

        embeddings = MetaEOLEmbeddings(model=model, **embeddings_kwargs)
    store = vector_store.from_documents(docs, embeddings, ids=[document.id for document in docs])
    candidates = min(chosen.candidates, len(docs))
    lexical = BM25Retriever(documents=docs, k=candidates)
    if chosen.method == "rrf":
        try:
            from langchain_classic.retrievers import EnsembleRetriever
        except ImportError as error:
            raise ImportError('Weighted RRF uses LangChain\'s EnsembleRetriever. Fix: pip install langchain-classic '
                              '(or pass fusion="zscore").') from error
        return EnsembleRetriever(retrievers=[store.as_retriever(search_kwargs={"k": candidates}), lexical],
                                 weights=list(chosen.weights), c=chosen.rrf_k)
    return ScoreFusionRetriever(vector_store=store, lexical=lexical, fusion=chosen, k=k)
