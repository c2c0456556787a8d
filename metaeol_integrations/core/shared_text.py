"""Shared-text execution: a text's prompts that agree up to the end of the text run that part once.

With text-first templates (``metaeol-textfirst``) the K prompts of a text are ``[template prefix][text][tail_k]``:
identical up to the end of the text, different only in their tails. Causal attention makes every state of the
shared part identical in all K prompts, so it is computed once and each tail attends to its keys and values:

1. **Shared part.** One row per text (what follows the cached template prefix, up to the longest token prefix its
   prompts have in common; the whole common start where no template prefix is cached), run against the template
   prefix's cache like any prefix-cached row; the call keeps the keys and values it appends. With packing (the
   default where the architecture allows it) the texts run end to end as one sequence (``core/packing.py``), so no
   padding is computed, and their keys and values are then laid out per text for stage 2.
2. **Tails.** A text's K tails go end to end in one row against that text's keys and values, with a 4D mask: each
   tail token sees the template prefix, its text's real tokens and the earlier tokens of its own tail, never another
   tail; positions continue after the text in every tail. A tail's last token is read as that prompt's state.

The result equals running each prompt whole (tests/test_shared_text.py compares with plain ``transformers``). The
common part is found on token ids, so a tokenizer that merges the closing quote with a tail's first characters only
shortens it. Slot-aware truncation happened before (the tail is never cut), so every prompt still ends in its own
``in one word:"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel

from metaeol_integrations.core.packing import LAYOUT_KEYWORD, PackedRows
from metaeol_integrations.core.prefix_cache import expand_for_batch
from metaeol_integrations.core.readout import read_states


@dataclass(frozen=True)
class TextRows:
    """One text's prompt rows (ascending) and how many leading tokens (after the template prefix) they share."""

    rows: torch.Tensor
    shared: int


def texts_of_group(input_ids: torch.Tensor, lengths: torch.Tensor, group: torch.Tensor, num_prompts: int,
                   needs_shared: bool = False) -> list[TextRows] | None:
    """The group's rows per text with their shared length, or None when no text has two prompts in the group
    (then nothing is shared). The shared part stops one token before the shortest prompt's end, so every prompt
    keeps a tail whose last token is read. ``needs_shared`` (rows without a cached prefix): None unless every text
    shares at least one token, so that no query of either stage is left without a key to attend to."""
    texts = group // num_prompts
    result, any_shared = [], False
    for text in torch.unique(texts):
        rows = group[texts == text]
        shortest = int(lengths[rows].min())
        ids = input_ids[rows, :shortest]
        differs = (ids != ids[:1]).any(dim=0).nonzero()
        common = int(differs[0]) if len(differs) else shortest
        shared = min(common, shortest - 1) if len(rows) > 1 else 0
        if needs_shared and shared == 0:
            return None
        any_shared |= shared > 0
        result.append(TextRows(rows, shared))
    return result if any_shared else None


def text_chunks(texts: Sequence[TextRows], lengths: torch.Tensor, max_tokens: int) -> list[list[TextRows]]:
    """Texts in calls of at most ``max_tokens`` padded tokens in either stage, longest shared part first."""
    ordered = sorted(texts, key=lambda text: -text.shared)
    chunks: list[list[TextRows]] = []
    current: list[TextRows] = []
    widest_shared = widest_tails = 0
    for text in ordered:
        tails = int((lengths[text.rows] - text.shared).sum())
        shared, tail_width = max(widest_shared, text.shared), max(widest_tails, tails)
        if current and (len(current) + 1) * max(shared, tail_width) > max_tokens:
            chunks.append(current)
            current, shared, tail_width = [], text.shared, tails
        current.append(text)
        widest_shared, widest_tails = shared, tail_width
    if current:
        chunks.append(current)
    return chunks


def per_text_cache(model: PreTrainedModel, cache: DynamicCache, layout: PackedRows) -> DynamicCache:
    """The keys and values of a packed call laid out one text per row, ``(texts, heads, prefix + width, dim)``,
    zeros where a text is shorter than the longest (stage 2's mask never reads them). Layers the call did not
    reach (it stops at the deepest layer read) keep only the prefix."""
    rows, width = layout.valid.shape
    prefix = layout.prefix_length
    laid_out = DynamicCache(config=model.config)
    for index, layer in enumerate(cache.layers):
        if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
            continue
        tensors = []
        for packed in (layer.keys, layer.values):
            padded = packed.new_zeros(rows, packed.shape[1], prefix + width, packed.shape[3])
            padded[:, :, :prefix] = packed[:, :, :prefix]
            if packed.shape[2] == prefix + layout.num_tokens:
                padded[layout.row, :, prefix + layout.column] = packed[0, :, prefix:].transpose(0, 1)
            tensors.append(padded)
        laid_out.update(*tensors, index)
    return laid_out


def run_shared_text(
    model: PreTrainedModel, input_ids: torch.Tensor, lengths: torch.Tensor, texts: Sequence[TextRows],
    prefix_cache: DynamicCache | None, cache_argument: str, read_layers: tuple[int, ...], num_layers: int,
    packed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The states at ``read_layers`` of the last token of every prompt row of ``texts`` (one call per stage):
    ``(rows, states)`` with states of shape ``(len(read_layers), len(rows), hidden)``. ``input_ids`` follow the
    cached template prefix (``prefix_cache``), or are whole prompts when it is None. ``packed`` runs stage 1's texts
    end to end (the model must pass ``packing.can_pack``)."""
    device = input_ids.device
    prefix = 0 if prefix_cache is None else prefix_cache.get_seq_length()
    shared = torch.tensor([text.shared for text in texts], device=device)
    width = int(shared.max())
    cache = (DynamicCache(config=model.config) if prefix_cache is None
             else expand_for_batch(model, prefix_cache, 1 if packed and width else len(texts)))
    if width:
        columns = torch.arange(width, device=device)
        valid = columns[None, :] < shared[:, None]
        first_rows = torch.stack([text.rows[0] for text in texts])
        ids = torch.where(valid, input_ids[first_rows, :width], 0)
        layout = PackedRows.from_mask(valid, prefix) if packed else None
        if layout is not None:
            inputs = {"input_ids": layout.pack(ids), "attention_mask": layout.block_mask(), "use_cache": True,
                      cache_argument: cache, "position_ids": layout.position_ids(), LAYOUT_KEYWORD: layout}
        else:
            mask = torch.cat([valid.new_ones(len(texts), prefix), valid], dim=1).long()
            inputs = {"input_ids": ids, "attention_mask": mask, "use_cache": True, cache_argument: cache,
                      "position_ids": (prefix + columns).expand(len(texts), -1)}
        # Only the keys and values are needed, up to the deepest layer the tails read.
        read_states(model, inputs, lambda states: states[:, :0].float(), (min(max(read_layers), num_layers),),
                    num_layers)
        if layout is not None:
            cache = per_text_cache(model, cache, layout)

    # Stage 2: each text's tails end to end in its row.
    tail_lengths = [lengths[text.rows] - text.shared for text in texts]
    tails_width = max(int(counts.sum()) for counts in tail_lengths)
    ids = input_ids.new_zeros(len(texts), tails_width)
    tail_of = torch.full((len(texts), tails_width), -1, dtype=torch.long, device=device)
    column = torch.zeros(len(texts), tails_width, dtype=torch.long, device=device)
    read_text, read_column, rows = [], [], []
    for index, (text, counts) in enumerate(zip(texts, tail_lengths)):
        start = 0
        for tail, (row, count) in enumerate(zip(text.rows.tolist(), counts.tolist())):
            ids[index, start:start + count] = input_ids[row, text.shared:text.shared + count]
            tail_of[index, start:start + count] = tail
            column[index, start:start + count] = torch.arange(count, device=device)
            read_text.append(index)
            read_column.append(start + count - 1)
            rows.append(row)
            start += count
    real = tail_of >= 0
    own_tail = ((tail_of[:, :, None] == tail_of[:, None, :]) & (column[:, None, :] <= column[:, :, None])
                & real[:, :, None] & real[:, None, :])
    text_keys = torch.arange(width, device=device)[None, None, :] < shared[:, None, None]
    text_keys = text_keys.expand(-1, tails_width, -1)
    prefix_keys = own_tail.new_ones(len(texts), tails_width, prefix)
    mask = torch.cat([prefix_keys, text_keys, own_tail], dim=2)[:, None]
    inputs = {"input_ids": ids, "attention_mask": mask, "use_cache": True, cache_argument: cache,
              "position_ids": prefix + shared[:, None] + column}
    where = (torch.tensor(read_text, device=device), torch.tensor(read_column, device=device))
    states = read_states(model, inputs, lambda hidden: hidden[where].float(), read_layers, num_layers)
    return torch.tensor(rows, device=device), states
