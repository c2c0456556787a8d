"""EmbedFilter (Wu et al., arXiv 2606.07502): keep only the middle singular band of the unembedding matrix.

The LLM's unembedding (LM head) matrix W (vocabulary x d) writes frequent, uninformative tokens into the hidden state
through the directions of its largest and smallest singular values. EmbedFilter projects the embedding onto W's
right singular vectors in the middle of the spectrum: ``z = Vh[s:s+k] h`` with ``k = d // tau`` and
``s = (d - k) // 2`` (rows of Vh in descending singular-value order), as the authors' code does. It needs no data:
one SVD of W. It is meant for the final-norm state (``layer=-1``); at other layers it is the same projection of a
state the LM head never reads. Built as sentence-transformers' own ``Dense`` (no bias, identity activation), so it
saves and loads like any ST model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Dense
from torch import nn

from metaeol_integrations.core.module import MetaEOL
from metaeol_integrations.errors import UnsupportedModelError
from metaeol_integrations.postprocessing.stack import place_module

_LM_HEAD_KEYS = ("lm_head.weight", "model.lm_head.weight")


def _tied(config) -> bool:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return bool(getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", False)))


def unembedding_matrix(module: MetaEOL) -> torch.Tensor:
    """The base LLM's unembedding matrix (vocabulary x d): the input embeddings when they are tied (SmolLM2,
    Gemma), else ``lm_head.weight`` read from the model folder's safetensors (the loaded model has no LM head)."""
    base = module.auto_model
    if _tied(base.config):
        return base.get_input_embeddings().weight.detach()
    from safetensors import safe_open

    folder = Path(str(base.name_or_path))
    index = folder / "model.safetensors.index.json"
    files = ([folder / name for name in json.loads(index.read_text())["weight_map"].values()] if index.is_file()
             else sorted(folder.glob("*.safetensors")))
    for file in dict.fromkeys(files):
        with safe_open(str(file), framework="pt") as handle:
            for key in _LM_HEAD_KEYS:
                if key in handle.keys():
                    return handle.get_tensor(key)
    raise UnsupportedModelError(
        f"No unembedding matrix found for {module.base_model!r}: its input embeddings are not tied and its folder "
        f"{str(folder)!r} has no lm_head.weight in safetensors. Fix: load the base model from a local folder that holds "
        "the full causal-LM checkpoint."
    )


def embed_filter(module: MetaEOL, tau: int = 2) -> Dense:
    """A ``Dense`` (d -> d // tau) projecting onto the middle band of the unembedding's right singular vectors."""
    d = module.get_embedding_dimension()
    if not isinstance(tau, int) or isinstance(tau, bool) or not 1 <= tau <= d:
        raise ValueError(f"EmbedFilter's tau must be an integer from 1 to {d} (band width d // tau). Fix: e.g. tau=2.")
    weight = unembedding_matrix(module).to(torch.float64)
    if weight.shape[1] != d:
        raise UnsupportedModelError(f"The unembedding matrix has width {weight.shape[1]}, the embedding {d}.")
    _, _, vh = torch.linalg.svd(weight, full_matrices=False)
    k = d // tau
    start = (d - k) // 2
    band = vh[start : start + k].to(torch.float32).contiguous()
    return Dense(d, k, bias=False, activation_function=nn.Identity(), init_weight=band)


def add_embed_filter(model: SentenceTransformer, tau: int = 2) -> SentenceTransformer:
    """Add EmbedFilter right after the MetaEOL module of ``model`` (in place; returns ``model``)."""
    from metaeol_integrations.postprocessing.center import CorpusCenter

    if not isinstance(model[0], MetaEOL):
        raise TypeError("add_embed_filter needs a MetaEOL SentenceTransformer (metaeol_integrations.load).")
    if any(isinstance(existing, (Dense, CorpusCenter)) for existing in model):
        raise ValueError("This model already has a Dense or CorpusCenter step after MetaEOL. Fix: add EmbedFilter "
                         "first (to a freshly loaded model), then fit the centering.")
    place_module(model, embed_filter(model[0], tau))
    return model
