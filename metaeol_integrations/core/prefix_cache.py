"""Key/value caches of the template text before the sentence, computed once and shared by every prompt.

In every template the tokens before the sentence are the same for all sentences (30 to 70 tokens with SmolLM2's
tokenizer), so their keys and values are too. They are computed once per (prefix ids, device, dtype) and, for each
forward call, exposed to the whole batch as an ``expand``-ed view: no copy per row. Only the sentence and the
template's tail run through the model.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel


def cache_argument_name(model: PreTrainedModel) -> str | None:
    """Name of the forward argument taking a KV cache (``cache`` in recent transformers, else
    ``past_key_values``), or None when the model takes neither or no ``position_ids`` (no prefix caching then)."""
    parameters = inspect.signature(model.forward).parameters
    if "position_ids" not in parameters:
        return None
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    return None


class PrefixKVStore:
    """The prefix caches of one module. Not pickled: a process rebuilds what it needs on first use."""

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], DynamicCache] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, model: PreTrainedModel, prefix: tuple[int, ...], cache_argument: str) -> DynamicCache:
        """The (read-only) cache holding ``prefix``'s keys and values in every layer."""
        device = next(model.parameters()).device
        key = (prefix, str(device), model.dtype)
        with self._lock:
            cache = self._entries.get(key)
            if cache is None:
                cache = DynamicCache(config=model.config)
                ids = torch.tensor([prefix], dtype=torch.long, device=device)
                with torch.no_grad():
                    model(input_ids=ids, use_cache=True, **{cache_argument: cache})
                self._entries[key] = cache
        return cache

    def clear(self) -> None:
        """Drop every cached prefix (e.g. after changing the model's weights in place)."""
        with self._lock:
            self._entries.clear()


def expand_for_batch(model: PreTrainedModel, prefix_cache: DynamicCache, batch_size: int) -> DynamicCache:
    """A fresh cache whose layers start as views of ``prefix_cache`` repeated over ``batch_size`` rows.

    The forward pass appends the batch's own keys and values to this new cache, never to ``prefix_cache``.
    """
    cache = DynamicCache(config=model.config)
    for index, layer in enumerate(prefix_cache.layers):
        keys = layer.keys.expand(batch_size, -1, -1, -1)
        values = layer.values.expand(batch_size, -1, -1, -1)
        cache.update(keys, values, index)
    return cache
