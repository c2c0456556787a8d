"""Key/value caches of the template text before the sentence, computed once and shared by every prompt.

In every template the tokens before the sentence are the same for all sentences (30 to 70 tokens with SmolLM2's
tokenizer), so their keys and values are too. They are computed once per (prefix ids, device, dtype). A forward
call may hold rows of several templates: each row gets its own template's prefix, left-padded to the call's
longest prefix and masked there (:class:`PrefixBatch`); rows of a single template share an ``expand``-ed view.
Only the sentence and the template's tail run through the model.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
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


@dataclass
class PrefixBatch:
    """The cached prefixes of one forward call's rows: ``caches[row_prefix[i]]`` is row ``i``'s prefix."""

    caches: list[DynamicCache]
    row_prefix: torch.Tensor

    def lengths(self) -> torch.Tensor:
        """Each row's prefix length in tokens, shape ``(rows, 1)``."""
        sizes = torch.tensor([cache.get_seq_length() for cache in self.caches], device=self.row_prefix.device)
        return sizes[self.row_prefix].unsqueeze(1)

    def mask(self) -> torch.Tensor:
        """``(rows, longest prefix)`` attention mask: 1 on each row's own prefix, 0 on its left padding."""
        lengths = self.lengths()
        width = int(lengths.max())
        slots = torch.arange(width, device=lengths.device).unsqueeze(0)
        return (slots >= width - lengths).to(torch.long)

    def cache_for_call(self, model: PreTrainedModel) -> DynamicCache:
        """A fresh cache for this call (the forward appends the rows' own keys and values to it, never to the
        shared prefix caches): an ``expand``-ed view for one template, else each row's prefix left-padded."""
        rows = self.row_prefix.shape[0]
        if len(self.caches) == 1:
            return expand_for_batch(model, self.caches[0], rows)
        width = max(cache.get_seq_length() for cache in self.caches)
        members = [(cache, (self.row_prefix == index).nonzero().flatten()) for index, cache in enumerate(self.caches)]
        cache = DynamicCache(config=model.config)
        for layer_index, template_layer in enumerate(self.caches[0].layers):
            shape = (rows, template_layer.keys.shape[1], width, template_layer.keys.shape[3])
            keys = template_layer.keys.new_zeros(shape)
            values = template_layer.values.new_zeros(shape[:3] + (template_layer.values.shape[3],))
            for prefix, member_rows in members:
                layer = prefix.layers[layer_index]
                length = layer.keys.shape[2]
                keys[member_rows, :, width - length:] = layer.keys
                values[member_rows, :, width - length:] = layer.values
            cache.update(keys, values, layer_index)
        return cache
