"""LlamaIndex integration: :class:`MetaEOLEmbedding`, a ``BaseEmbedding`` (extra ``llama-index``)."""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as error:  # exercised in a subprocess test
    from metaeol_integrations._extras import missing_extra

    raise missing_extra("llama-index", "llama-index-core") from error

from metaeol_integrations.llama_index.embedding import MetaEOLEmbedding

__all__ = ["MetaEOLEmbedding"]
