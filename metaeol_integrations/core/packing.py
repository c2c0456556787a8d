"""Rows of one template packed end to end: the projections and MLPs see real tokens only, attention stays per row.

Length-sorted, right-padded chunks still compute padding: on English STS-B, 203 tokens per sentence against 172 real
ones (benchmarks/results/throughput.md). A pack puts a chunk's rows end to end in one sequence of batch 1, positions
restarting after the shared prefix in every row, so every Linear layer runs on real tokens only.

Attention must keep the rows apart. The call carries a block-diagonal 4D mask, which is exact with any attention
function but costs a dense (tokens x tokens) product; so it also carries the rows' layout (:class:`PackedRows`, under
the forward keyword :data:`LAYOUT_KEYWORD`), and the attention function registered as :data:`PACKED_ATTENTION`
un-packs queries, keys and values into a padded (rows, width) batch, runs SDPA there and packs the result again.
Without a layout (any other call on the same model) that function is transformers' SDPA, unchanged.

Registering a named attention function (and its mask function) is transformers' own extension point
(``AttentionInterface.register``); it happens when this module is imported, so worker processes that unpickle a
packed model have it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

PACKED_ATTENTION = "metaeol_packed"
LAYOUT_KEYWORD = "metaeol_rows"
# Architectures whose decoder passes forward keywords through to the attention function and takes a ready 4D mask
# as it is (checked against plain padded calls in tests/test_packing.py). Others keep padded calls.
PACKABLE_MODEL_TYPES = frozenset({"llama", "gemma3_text"})


@dataclass(frozen=True)
class PackedRows:
    """Where the rows of a right-padded chunk sit once packed: row ``r``'s column ``c`` is packed token
    ``start[r] + c``. ``prefix_length`` tokens of cached keys/values precede every row."""

    valid: torch.Tensor  # (rows, width) bool: real tokens of the padded chunk
    lengths: torch.Tensor  # (rows,)
    start: torch.Tensor  # (rows,): each row's first packed position
    row: torch.Tensor  # (tokens,): the row of each packed token
    column: torch.Tensor  # (tokens,): its column within that row
    prefix_length: int

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor, prefix_length: int) -> PackedRows:
        """The layout of a right-padded chunk (every row's real tokens start at column 0)."""
        valid = attention_mask.bool()
        lengths = valid.sum(dim=1)
        columns = torch.arange(valid.shape[1], device=valid.device)
        if not torch.equal(valid, columns[None, :] < lengths[:, None]):
            raise ValueError("Packing needs right-padded rows (real tokens from column 0 on).")
        start = torch.cumsum(lengths, dim=0) - lengths
        row, column = valid.nonzero(as_tuple=True)  # row-major: the packed order
        return cls(valid, lengths, start, row, column, int(prefix_length))

    @property
    def num_tokens(self) -> int:
        return int(self.row.shape[0])

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        """``(rows, width, ...)`` -> ``(1, tokens, ...)``: the real tokens, row after row."""
        return padded[self.valid].unsqueeze(0)

    def position_ids(self) -> torch.Tensor:
        return (self.prefix_length + self.column).unsqueeze(0)

    def block_mask(self) -> torch.Tensor:
        """``(1, 1, tokens, prefix + tokens)`` bool: the prefix, and earlier tokens of the same row."""
        same_row = self.row[:, None] == self.row[None, :]
        causal = self.column[:, None] >= self.column[None, :]
        prefix = torch.ones(self.num_tokens, self.prefix_length, dtype=torch.bool, device=self.row.device)
        return torch.cat([prefix, same_row & causal], dim=1)[None, None]

    @cached_property  # every layer of the call uses it
    def row_mask(self) -> torch.Tensor:
        """``(rows, 1, width, prefix + width)`` bool for the un-packed batch: the prefix, and the row's own earlier
        real tokens. A padding query still sees its row's first token, so no softmax row is empty."""
        rows, width = self.valid.shape
        columns = torch.arange(width, device=self.valid.device)
        own = (columns[:, None] >= columns[None, :])[None] & self.valid[:, None, :]
        prefix = torch.ones(rows, width, self.prefix_length, dtype=torch.bool, device=self.valid.device)
        return torch.cat([prefix, own], dim=2)[:, None]


def can_pack(model: PreTrainedModel) -> bool:
    """Whether ``model``'s calls can be packed: a listed architecture running SDPA attention."""
    config = model.config
    return (getattr(config, "model_type", None) in PACKABLE_MODEL_TYPES
            and getattr(config, "_attn_implementation", None) in ("sdpa", PACKED_ATTENTION))


def fits_window(model: PreTrainedModel, tokens_per_row: int) -> bool:
    """A sliding-window layer needs no window when every row (prefix included) fits in it; the 4D mask of a pack
    does not encode one."""
    window = getattr(model.config, "sliding_window", None)
    return window is None or tokens_per_row <= window


def packed_attention(
    module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
    attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None, **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA per row for a packed call (see the module docstring); transformers' SDPA for any other call."""
    layout: PackedRows | None = kwargs.pop(LAYOUT_KEYWORD, None)
    if (layout is None or query.shape[0] != 1 or query.shape[2] != layout.num_tokens or dropout
            or key.shape[2] != layout.prefix_length + layout.num_tokens or kwargs.get("softcap") is not None):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    rows, width = layout.valid.shape
    prefix = layout.prefix_length
    # (1, heads, tokens, dim) -> (rows, width, heads, dim) with zeros at padding, and back.
    padded_query = query.new_zeros(rows, width, query.shape[1], query.shape[3])
    padded_query[layout.row, layout.column] = query[0].transpose(0, 1)
    keys_values = []
    for states in (key, value):
        padded = states.new_zeros(rows, prefix + width, states.shape[1], states.shape[3])
        padded[:, :prefix] = states[0, :, :prefix].transpose(0, 1)
        padded[layout.row, prefix + layout.column] = states[0, :, prefix:].transpose(0, 1)
        keys_values.append(padded.transpose(1, 2))
    output = F.scaled_dot_product_attention(
        padded_query.transpose(1, 2), *keys_values, attn_mask=layout.row_mask, scale=scaling,
        enable_gqa=query.shape[1] != key.shape[1],
    )
    return output.transpose(1, 2)[layout.row, layout.column].unsqueeze(0), None


AttentionInterface.register(PACKED_ATTENTION, packed_attention)
AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)
