"""Run a batch's prompt rows through the LLM in few, full forward calls and read their last-token states.

Rows sharing a cached template prefix run together against its keys and values (``core/prefix_cache.py``); each group
is split into packs of at most ``min(PACK_TOKENS, max_tokens_per_forward)`` real tokens run end to end
(``core/packing.py``), or, where the model cannot be packed, length-sorted chunks of at most
``max_tokens_per_forward`` padded tokens (``core/batching.py``). The prompting methods add their inputs to every call
(``core/methods.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedModel

from metaeol_integrations.core.batching import PACK_TOKENS, group_rows, length_buckets, token_packs
from metaeol_integrations.core.methods import BoundMethod, CallInputs
from metaeol_integrations.core.packing import PACKED_ATTENTION, can_pack, fits_window
from metaeol_integrations.core.prefix_cache import PrefixKVStore, cache_argument_name
from metaeol_integrations.core.readout import accepts_position_ids, last_token_states
from metaeol_integrations.core.shared_text import run_shared_text, text_chunks, texts_of_group


class PromptRunner:
    """The forward calls of one model: scheduling, the prefix caches, packing."""

    def __init__(self, model: PreTrainedModel, num_layers: int) -> None:
        self.model, self.num_layers = model, num_layers
        self.pass_position_ids = accepts_position_ids(model)
        self.cache_argument = cache_argument_name(model)
        self.prefix_store = PrefixKVStore()
        # Rows of one template run end to end, without padding, where the architecture allows it.
        self.can_pack = self.pass_position_ids and can_pack(model)
        if self.can_pack:
            model.set_attn_implementation(PACKED_ATTENTION)  # plain SDPA for every call without a pack layout
        self._packing = self.can_pack
        # Text-first prompts compute their common text once (core/shared_text.py); it needs ready 4D masks, as
        # packing does.
        self._shared_text = self.can_pack

    @property
    def packing(self) -> bool:
        """Whether calls are packed (on wherever the architecture allows it); False runs padded chunks."""
        return self._packing

    @packing.setter
    def packing(self, value: bool) -> None:
        if value and not self.can_pack:
            raise ValueError(f"{type(self.model).__name__} cannot run packed calls here (core/packing.py lists the "
                             "architectures). Fix: leave packing off for this model.")
        self._packing = bool(value)

    @property
    def shared_text(self) -> bool:
        """Whether a text's prompts that agree up to the end of the text run that part once (same vectors)."""
        return self._shared_text

    @shared_text.setter
    def shared_text(self, value: bool) -> None:
        if value and not self.can_pack:
            raise ValueError(f"{type(self.model).__name__} cannot run shared-text calls here (they need the "
                             "architectures core/packing.py lists). Fix: leave shared_text off for this model.")
        self._shared_text = bool(value)

    @property
    def caches_prefixes(self) -> bool:
        """Whether this model can run rows against a cached prefix."""
        return self.cache_argument is not None

    def clear_prefix_cache(self) -> None:
        """Drop every cached prefix (after the weights change in place, or to time cold starts)."""
        self.prefix_store.clear()

    def run(
        self, features: dict[str, Any], read_layers: Sequence[int], methods: Sequence[BoundMethod],
        max_tokens_per_forward: int,
    ) -> torch.Tensor:
        """Last-token states of every row of ``features`` (from the prompt tokenizer) at ``read_layers``:
        shape ``(len(read_layers), rows, hidden)``, float32."""
        read_layers = tuple(read_layers)
        num_prompts = int(features["num_prompts"])
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]
        lengths = attention_mask.sum(dim=1)
        states = torch.empty(len(read_layers), input_ids.shape[0], int(self.model.config.hidden_size),
                             device=input_ids.device)
        prepared = [method.prepare(features) for method in methods]
        spans = features.get("slot_spans")  # readout "slot-mean": each row's text tokens
        for prefix_index, group in group_rows(features["prefix_index"]):
            prefix_cache = None
            if prefix_index >= 0:
                prefix = tuple(features["prefixes"][prefix_index])
                prefix_cache = self.prefix_store.get(self.model, prefix, self.cache_argument)
            prefix_length = 0 if prefix_cache is None else prefix_cache.get_seq_length()
            # The recipe's prefix_cache=False means every prompt runs whole (the reference path): nothing shared.
            if features.get("reuse_keys_values") and self._shared_text and not methods and spans is None:
                texts = texts_of_group(input_ids, lengths, group, num_prompts, needs_shared=prefix_cache is None)
                if texts is not None and fits_window(self.model, prefix_length + int(lengths[group].max())
                                                     * num_prompts):
                    for chunk in text_chunks(texts, lengths, max_tokens_per_forward):
                        rows, chunk_states = run_shared_text(self.model, input_ids, lengths, chunk, prefix_cache,
                                                             self.cache_argument, read_layers, self.num_layers,
                                                             packed=self._packing)
                        states[:, rows] = chunk_states
                    continue
            packed = self._packing and fits_window(self.model, prefix_length + int(lengths[group].max()))
            chunks = (token_packs(lengths[group], min(PACK_TOKENS, max_tokens_per_forward)) if packed
                      else length_buckets(lengths[group], max_tokens_per_forward))
            for chunk in chunks:
                rows = group[chunk]
                width = int(lengths[rows].max())
                chunk_ids = input_ids[rows, :width]
                call = CallInputs()
                for method, state in zip(methods, prepared):
                    call = call.merge(method.call_inputs(chunk_ids, rows, num_prompts, state))
                states[:, rows] = last_token_states(
                    self.model, chunk_ids, attention_mask[rows, :width], read_layers, self.num_layers,
                    self.pass_position_ids, prefix_cache=prefix_cache, cache_argument=self.cache_argument,
                    average_layers=False, packed=packed, inputs_embeds=call.inputs_embeds, edits=call.edits,
                    spans=None if spans is None else spans[rows],
                )
        return states
