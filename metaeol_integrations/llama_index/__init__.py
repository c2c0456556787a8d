"""LlamaIndex integration: :class:`MetaEOLEmbedding`, a ``BaseEmbedding``, and :func:`hybrid_retriever` (dense + BM25) (extra ``llama-index``)."""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as error:  # exercised in a subprocess test
    from metaeol_integrations._extras import missing_extra

    raise missing_extra("llama-index", "llama-index-core") from error

from metaeol_integrations.llama_index.embedding import MetaEOLEmbedding
from metaeol_integrations.llama_index.hybrid import hybrid_retriever

__all__ = ["MetaEOLEmbedding", "hybrid_retriever"]
