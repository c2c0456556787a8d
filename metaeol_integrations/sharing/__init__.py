"""Sharing MetaEOL models: weightless folders that name their base LLM by hub id, model cards, loading by id."""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Imported on first use: the module (core) imports sharing.persistence, and these import the module.
_LAZY = {
    "CardFacts": "model_card", "MetaEOLModelCardData": "model_card", "render_model_card": "model_card",
    "write_reference_folder": "reference",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
