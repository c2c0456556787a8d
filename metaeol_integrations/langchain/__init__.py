"""LangChain integration: :class:`MetaEOLEmbeddings`, an ``Embeddings``, and :func:`hybrid_retriever` (dense + BM25) (extra ``langchain``)."""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as error:  # exercised in a subprocess test
    from metaeol_integrations._extras import missing_extra

    raise missing_extra("langchain", "langchain-core") from error

from metaeol_integrations.langchain.embeddings import MetaEOLEmbeddings
from metaeol_integrations.langchain.hybrid import hybrid_retriever

__all__ = ["MetaEOLEmbeddings", "hybrid_retriever"]
