"""MetaEOL as a LangChain ``Embeddings``, shaped like ``langchain_huggingface.HuggingFaceEmbeddings``."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from sentence_transformers import SentenceTransformer

from metaeol_integrations.loading import load
from metaeol_integrations.postprocessing import fit_center
from metaeol_integrations.presets import DEFAULT_PRESET


class MetaEOLEmbeddings(BaseModel, Embeddings):
    """LangChain embeddings computed with MetaEOL.

    Vectors are L2-normalised by default (``normalize_embeddings=True``), which is what vector stores using inner
    product or cosine distance expect; set it to False for the raw MetaEOL vectors.

    Example:
        .. code-block:: python

            from metaeol_integrations.langchain import MetaEOLEmbeddings

            embeddings = MetaEOLEmbeddings(model_name="metaeol-smollm2-135m")
            vectors = embeddings.embed_documents(["A man plays a guitar.", "A dog runs."])
    """

    model_name: str = Field(default=DEFAULT_PRESET, alias="model")
    """Preset, saved MetaEOL folder, model folder or ``.gguf`` file (see ``metaeol info``)."""
    cache_folder: str | None = None
    """Where hub downloads and dequantised GGUF copies are kept."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of ``metaeol_integrations.load``. As in ``langchain_huggingface.HuggingFaceEmbeddings``, the
    ``SentenceTransformer`` arguments (``device``, ``prompts``, ``truncate_dim``..., and ``model_kwargs`` for the
    LLM's ``from_pretrained``, e.g. ``{"dtype": "float32"}``) go here; so do the recipe options (``templates``,
    ``layer``, ``max_seq_length``...)."""
    encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments of ``SentenceTransformer.encode_document`` (and of queries, unless overridden)."""
    query_encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments of ``SentenceTransformer.encode_query``; defaults to ``encode_kwargs``."""
    batch_size: int = Field(default=16, gt=0)
    """Texts per forward batch (each text is K prompts)."""
    normalize_embeddings: bool = True
    """L2-normalise the vectors."""
    show_progress: bool = False
    """Show a progress bar while embedding documents."""
    client: SentenceTransformer | None = Field(default=None, exclude=True)
    """An already loaded MetaEOL ``SentenceTransformer`` to use instead of loading ``model_name``."""

    _model: SentenceTransformer = PrivateAttr()

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, protected_namespaces=(), arbitrary_types_allowed=True
    )

    @model_validator(mode="after")
    def _load_model(self) -> MetaEOLEmbeddings:
        self._model = self.client or load(self.model_name, cache_folder=self.cache_folder, **self.model_kwargs)
        return self

    def _encode_kwargs(self, overrides: dict[str, Any]) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "normalize_embeddings": self.normalize_embeddings,
            "convert_to_numpy": True,
            **overrides,
        }

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (sentence-transformers task "document")."""
        kwargs = self._encode_kwargs({"show_progress_bar": self.show_progress, **self.encode_kwargs})
        return self._model.encode_document(list(texts), **kwargs).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (sentence-transformers task "query")."""
        kwargs = self._encode_kwargs(self.query_encode_kwargs or self.encode_kwargs)
        kwargs["show_progress_bar"] = False
        return self._model.encode_query([text], **kwargs)[0].tolist()

    def fit_center(self, texts: list[str]) -> MetaEOLEmbeddings:
        """Fit corpus mean removal on a sample of the documents you will index (see
        :func:`metaeol_integrations.fit_center`); embed the documents after this call. Returns ``self``."""
        fit_center(self._model, list(texts), batch_size=self.batch_size, show_progress_bar=self.show_progress)
        return self

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents in a worker thread, leaving the event loop free."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one query in a worker thread, leaving the event loop free."""
        return await asyncio.to_thread(self.embed_query, text)
