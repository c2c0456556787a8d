"""Chunked pooling for long texts: a text longer than N tokens is cut into consecutive windows of N tokens, each
window is prompted and embedded like a text of its own, and the text's vector is the mean of its windows' vectors.

A last-token readout of a small LLM summarises a sentence far better than a 300-token abstract; on SciFact
(SmolLM2, PromptEOL) windows of 128 tokens lift nDCG@10 on the dev queries from 38.2 to 53.2 (docs/retrieval.md).
Windows are cut at token boundaries of the base tokenizer by character offsets, so every character of the text is in
exactly one window and each window is ordinary text for the templates (preprocessing, slot-aware truncation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def token_windows(text: str, tokenizer: Any, size: int) -> list[str]:
    """``text`` cut into consecutive pieces of at most ``size`` tokens of ``tokenizer``; a text of ``size`` tokens
    or fewer (or an empty one) is one piece."""
    if size < 1:
        raise ValueError("A window holds at least one token. Fix: e.g. chunk_tokens=128.")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= size:
        return [text]
    starts = [offsets[i][0] for i in range(0, len(offsets), size)]
    starts[0] = 0
    return [text[start:end] for start, end in zip(starts, [*starts[1:], len(text)])]


def window_lengths(text: str, tokenizer: Any, size: int) -> list[int]:
    """How many tokens of ``tokenizer`` each piece of ``token_windows(text, tokenizer, size)`` holds (every piece
    ``size`` but the last; an empty text counts as one token, so its one piece has a weight)."""
    n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return [max(n, 1)] if n <= size else [min(size, n - start) for start in range(0, n, size)]


def split_into_windows(texts: Sequence[str], tokenizer: Any, size: int) -> tuple[list[str], list[int]]:
    """Every text's windows, flattened in order, and how many windows each text has."""
    pieces = [token_windows(text, tokenizer, size) for text in texts]
    return [piece for windows in pieces for piece in windows], [len(windows) for windows in pieces]


def mean_over_windows(values: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """Rows of ``values`` (one per window, texts' windows consecutive) averaged per text: shape ``(len(counts), ...)``."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=values.device),
                                    torch.as_tensor(list(counts), device=values.device))
    sums = torch.zeros((len(counts), *values.shape[1:]), dtype=values.dtype, device=values.device)
    sums.index_add_(0, owner, values)
    return sums / torch.as_tensor(list(counts), dtype=values.dtype, device=values.device).view(-1, *[1] * (values.dim() - 1))
