"""Where a post-processing module goes in a SentenceTransformer's module list."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sentence_transformers import SentenceTransformer
from torch import nn


def place_module(model: SentenceTransformer, module: nn.Module, replace: type | None = None) -> None:
    """Put ``module`` in place of the model's first module of type ``replace``; without one, after every module that
    computes the vector but before a ``Normalize`` (which must stay last)."""
    from sentence_transformers.base.modules import Normalize

    for i, existing in enumerate(model):
        if replace is not None and isinstance(existing, replace):
            model[i] = module
            return
    at = next((i for i, existing in enumerate(model) if isinstance(existing, Normalize)), len(model))
    model.insert(at, module)


@contextmanager
def without_modules(model: SentenceTransformer, *types: type) -> Iterator[SentenceTransformer]:
    """``model`` with its modules of ``types`` taken out for the duration (e.g. to fit a step on the vectors that
    reach it, before centering and normalisation); the original list comes back afterwards, even on error."""
    original = list(model)
    _set_modules(model, [module for module in original if not isinstance(module, types)])
    try:
        yield model
    finally:
        _set_modules(model, original)


def _set_modules(model: SentenceTransformer, modules: list[nn.Module]) -> None:
    for key in list(model._modules):
        del model._modules[key]
    for i, module in enumerate(modules):
        model.add_module(str(i), module)
