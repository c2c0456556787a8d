"""Corpus mean removal: subtract the mean embedding of the user's documents from every vector, or only each vector's
component along the mean's direction (``mode="project"``).

Decoder-LLM last-token states share one large common direction (unrelated sentences reach cosine 0.8), which
swamps the differences retrieval ranks on. Removing a corpus mean is the classic fix (e.g. "all-but-the-top",
Mu & Viswanath 2018, its first step). The mean is fitted once on a sample of documents, kept as a buffer, saved in
the model folder (safetensors) and applied to queries and documents alike, so cosine ranks change but nothing else.
The second mode removes the projection onto the mean direction, x - (x . u) u with u the unit mean (the
training-free "mean bias" correction studied on many embedding models in 2025): it keeps the part of each vector
that is orthogonal to the common direction, including the mean's own orthogonal offset the first mode removes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Module

from metaeol_integrations.postprocessing.stack import place_module, without_modules

CENTER_MODES = ("subtract", "project")
"""``subtract``: x - mean; ``project``: x - (x . u) u, u = mean / |mean| (the mean direction removed)."""


def check_center_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`CENTER_MODES`, else a ValueError naming them."""
    if mode not in CENTER_MODES:
        raise ValueError(f"Unknown centering mode {mode!r}. Fix: use one of {', '.join(CENTER_MODES)}.")
    return mode


def remove_mean(vectors: np.ndarray, mean: np.ndarray, mode: str = "subtract") -> np.ndarray:
    """What :class:`CorpusCenter` computes, on numpy vectors (float64): the harness applies it to cached vectors."""
    vectors, mean = np.asarray(vectors, dtype=np.float64), np.asarray(mean, dtype=np.float64)
    if check_center_mode(mode) == "subtract":
        return vectors - mean
    unit = mean / max(np.linalg.norm(mean), 1e-12)
    return vectors - np.outer(vectors @ unit, unit)


class CorpusCenter(Module):
    """Subtracts a fixed mean vector from ``sentence_embedding``.

    Args:
        dimension: Size of the vectors it receives.
        num_texts: How many texts the mean was fitted on (0: not fitted, the mean is zero).
        mean: The mean vector; zeros when omitted (then the module changes nothing).
        mode: ``subtract`` (the mean) or ``project`` (each vector's component along the mean's direction).
    """

    config_keys: list[str] = ["dimension", "num_texts", "mode"]

    def __init__(self, dimension: int, num_texts: int = 0, mean: torch.Tensor | None = None,
                 mode: str = "subtract") -> None:
        super().__init__()
        self.dimension, self.num_texts, self.mode = int(dimension), int(num_texts), check_center_mode(mode)
        if mean is None:
            mean = torch.zeros(self.dimension)
        if tuple(mean.shape) != (self.dimension,):
            raise ValueError(f"The mean has shape {tuple(mean.shape)}, expected ({self.dimension},).")
        self.register_buffer("mean", mean.detach().to(torch.float32).clone())

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        vectors = features["sentence_embedding"]
        mean = self.mean.to(device=vectors.device, dtype=vectors.dtype)
        if self.mode == "subtract":
            features["sentence_embedding"] = vectors - mean
        else:
            norm = torch.linalg.vector_norm(mean)
            direction = mean / norm if norm > 0 else mean  # an unfitted (zero) mean changes nothing
            features["sentence_embedding"] = vectors - (vectors @ direction)[:, None] * direction
        return features

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token: bool | str | None = None,
             cache_folder: str | None = None, revision: str | None = None, local_files_only: bool = False,
             **kwargs: Any) -> CorpusCenter:
        hub_kwargs = {"subfolder": subfolder, "token": token, "cache_folder": cache_folder, "revision": revision,
                      "local_files_only": local_files_only}
        config = cls.load_config(model_name_or_path=model_name_or_path, **hub_kwargs)
        # Folders saved before the mode existed subtract the mean.
        module = cls(dimension=config["dimension"], num_texts=config.get("num_texts", 0),
                     mode=config.get("mode", "subtract"))
        return cls.load_torch_weights(model_name_or_path=model_name_or_path, model=module, **hub_kwargs)


SHIPPED_MEANS = Path(__file__).with_name("means")
"""Centering means fitted once on a fixed sample of sentences and shipped with presets (``Preset.center``)."""


def shipped_center(filename: str, mode: str = "subtract") -> CorpusCenter:
    """The :class:`CorpusCenter` of a mean shipped in the package (``postprocessing/means/<filename>``)."""
    from safetensors import safe_open

    with safe_open(str(SHIPPED_MEANS / filename), framework="pt") as handle:
        mean, meta = handle.get_tensor("mean"), handle.metadata() or {}
    return CorpusCenter(mean.shape[0], num_texts=int(meta.get("num_texts", 0)), mean=mean, mode=mode)


def fit_center(model: SentenceTransformer, texts: Sequence[str], batch_size: int = 16,
               show_progress_bar: bool | None = None, mode: str = "subtract") -> SentenceTransformer:
    """Fit corpus mean removal on ``texts`` (a sample of the documents you will index) and add it to ``model``;
    ``mode="project"`` removes only the mean's direction (see :data:`CENTER_MODES`).

    The texts are encoded as documents (``encode_document``) by every module before the centering step; a model
    that already has a :class:`CorpusCenter` gets its mean replaced. Returns ``model`` (changed in place); save it
    with ``model.save(folder)`` or :func:`metaeol_integrations.save` to keep the mean.
    """
    from sentence_transformers.base.modules import Normalize

    texts = list(texts)
    check_center_mode(mode)
    if not texts or not all(isinstance(text, str) for text in texts):
        raise ValueError("fit_center needs a non-empty list of texts. Fix: pass a sample of your documents.")
    # The mean of the vectors that will reach the centering step: no old mean removed, not normalised yet.
    with without_modules(model, CorpusCenter, Normalize):
        vectors = model.encode_document(texts, batch_size=batch_size, convert_to_tensor=True,
                                        normalize_embeddings=False, show_progress_bar=show_progress_bar)
    vectors = vectors.to(torch.float64)
    center = CorpusCenter(vectors.shape[1], num_texts=len(texts), mean=vectors.mean(dim=0).cpu(), mode=mode)
    place_module(model, center, replace=CorpusCenter)
    return model

