"""MetaEOL as a LlamaIndex ``BaseEmbedding``, shaped like ``llama_index.embeddings.huggingface.HuggingFaceEmbedding``."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import DEFAULT_EMBED_BATCH_SIZE, BaseEmbedding, Embedding
from llama_index.core.callbacks import CallbackManager
from pydantic import Field, PrivateAttr
from sentence_transformers import SentenceTransformer

from metaeol_integrations.loading import load
from metaeol_integrations.postprocessing import fit_center
from metaeol_integrations.presets import DEFAULT_PRESET


class MetaEOLEmbedding(BaseEmbedding):
    """LlamaIndex embeddings computed with MetaEOL; vectors are L2-normalised unless ``normalize=False``.

    Queries go through ``encode_query`` and node texts through ``encode_document``, so a model with
    ``task_templates={"query": ...}`` embeds them with their own templates, exactly as ``SentenceTransformer`` does.

    Example:
        .. code-block:: python

            from llama_index.core import Settings
            from metaeol_integrations.llama_index import MetaEOLEmbedding

            Settings.embed_model = MetaEOLEmbedding("metaeol-smollm2-135m")
    """

    normalize: bool = Field(default=True, description="L2-normalise the vectors.")
    cache_folder: str | None = Field(default=None, description="Where hub downloads and GGUF copies are kept.")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of metaeol_integrations.load (device, layer, ...)."
    )
    show_progress_bar: bool = Field(default=False, description="Show a progress bar for batches of texts.")

    _model: SentenceTransformer = PrivateAttr()

    def __init__(
        self,
        model_name: str = DEFAULT_PRESET,
        *,
        model: SentenceTransformer | None = None,
        normalize: bool = True,
        embed_batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        cache_folder: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        show_progress_bar: bool = False,
        callback_manager: CallbackManager | None = None,
        device: str | None = None,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        # device and max_length as llama-index-embeddings-huggingface names them; they are load() keywords here
        # (max_length is the prompt's max_seq_length), also accepted inside model_kwargs as before.
        model_kwargs = {**(model_kwargs or {}),
                        **({"device": device} if device is not None else {}),
                        **({"max_seq_length": max_length} if max_length is not None else {})}
        super().__init__(
            model_name=model_name,
            normalize=normalize,
            embed_batch_size=embed_batch_size,
            cache_folder=cache_folder,
            model_kwargs=model_kwargs or {},
            show_progress_bar=show_progress_bar,
            callback_manager=callback_manager,
            **kwargs,
        )
        # Set after super().__init__(): pydantic drops private attributes assigned before it.
        self._model = model or load(model_name, cache_folder=cache_folder, **self.model_kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "MetaEOLEmbedding"

    def _encode(self, texts: list[str], is_query: bool) -> list[Embedding]:
        encode = self._model.encode_query if is_query else self._model.encode_document
        vectors = encode(
            texts,
            batch_size=self.embed_batch_size,
            normalize_embeddings=self.normalize,
            show_progress_bar=self.show_progress_bar and not is_query,
            convert_to_numpy=True,
        )
        return vectors.tolist()

    def fit_center(self, texts: list[str]) -> MetaEOLEmbedding:
        """Fit corpus mean removal on a sample of the node texts you will index (see
        :func:`metaeol_integrations.fit_center`); build the index after this call. Returns ``self``."""
        fit_center(self._model, list(texts), batch_size=self.embed_batch_size, show_progress_bar=self.show_progress_bar)
        return self

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encode([query], is_query=True)[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._encode([text], is_query=False)[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encode(list(texts), is_query=False)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
