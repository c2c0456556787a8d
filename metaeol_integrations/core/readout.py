"""Read hidden states at each prompt's last token from one forward call of the frozen LLM.

Intermediate layers are read with temporary forward pre-hooks instead of ``output_hidden_states=True``: that flag makes
transformers install hooks that cannot be pickled (which breaks the multi-process pool) and keeps every layer's
states; ours are removed after each call, keep only the last token, and stop the pass at the deepest requested layer.
Methods change a call through ``inputs_embeds`` and *edits* (pre-hooks that may change a submodule's input in place).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from metaeol_integrations.core.backbone import decoder_layers
from metaeol_integrations.core.packing import LAYOUT_KEYWORD, PackedRows
from metaeol_integrations.core.prefix_cache import expand_for_batch


class _StopForward(Exception):
    """Raised by a hook once the deepest requested layer has been read."""


@dataclass(frozen=True)
class RowPositions:
    """Where each prompt row's tokens sit in a forward call's states: row ``r``'s column ``c`` is
    ``x[batch[r], start[r] + c]`` (a padded call: ``batch`` is the row, ``start`` 0; a packed one: batch 0).
    ``last`` holds each row's last real column."""

    batch: torch.Tensor
    start: torch.Tensor
    last: torch.Tensor

    @classmethod
    def of_call(cls, attention_mask: torch.Tensor, packed: PackedRows | None) -> RowPositions:
        last = last_token_index(attention_mask)
        if packed is None:
            return cls(torch.arange(attention_mask.shape[0], device=last.device), torch.zeros_like(last), last)
        return cls(torch.zeros_like(last), packed.start, last)

    def __call__(self, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Index of ``x`` selecting each row's token at ``columns`` (one column per row)."""
        return self.batch, self.start + columns


# A method's change to one submodule's input: edit(x, at) may change x in place; at(at.last) indexes the last tokens.
Edit = Callable[[torch.Tensor, RowPositions], None]


@dataclass(frozen=True)
class SpanTokens:
    """Every token of every row's ``[start, end)`` span in a call's states (row after row), located once per call
    and averaged per row at each layer read."""

    where: tuple[torch.Tensor, torch.Tensor]  # index into the call's states
    rows: torch.Tensor  # the row of each of those tokens
    lengths: torch.Tensor  # tokens per row

    @classmethod
    def of_call(cls, at: RowPositions, spans: torch.Tensor) -> SpanTokens:
        lengths = (spans[:, 1] - spans[:, 0]).clamp(min=1)
        rows = torch.repeat_interleave(torch.arange(spans.shape[0], device=spans.device), lengths)
        offsets = torch.arange(int(lengths.sum()), device=spans.device) - torch.repeat_interleave(
            torch.cumsum(lengths, 0) - lengths, lengths)
        return cls((at.batch[rows], at.start[rows] + spans[rows, 0] + offsets), rows, lengths)

    def means(self, states: torch.Tensor) -> torch.Tensor:
        """Each row's mean state over its span, float32."""
        values = states[self.where].float()
        sums = values.new_zeros(self.lengths.shape[0], values.shape[-1]).index_add_(0, self.rows, values)
        return sums / self.lengths[:, None].to(sums.dtype)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each row's last real token, whatever the padding side."""
    width = attention_mask.shape[1]
    return width - 1 - attention_mask.flip(1).to(torch.long).argmax(dim=1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left padding does not shift a row's positions."""
    return (attention_mask.to(torch.long).cumsum(dim=1) - 1).clamp(min=0)


def accepts_position_ids(model: nn.Module) -> bool:
    """Whether the model's forward takes ``position_ids`` (nearly all decoder-only models do)."""
    return "position_ids" in inspect.signature(model.forward).parameters


def _first_input(args: tuple, kwargs: dict | None) -> torch.Tensor:
    """A pre-hook's view of the module's first input, passed positionally or by keyword (``hidden_states`` for a
    decoder layer)."""
    if args:
        return args[0]
    kwargs = kwargs or {}
    return kwargs["hidden_states"] if "hidden_states" in kwargs else next(iter(kwargs.values()))


def forward_inputs(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, pass_position_ids: bool,
    prefix_cache: DynamicCache | None = None, cache_argument: str | None = None,
    inputs_embeds: torch.Tensor | None = None, packed: PackedRows | None = None,
) -> dict[str, Any]:
    """Keyword arguments of one forward call: ids (or ``inputs_embeds``), mask and positions over real tokens, and
    the prefix's keys and values when there is a ``prefix_cache``. With ``packed`` (a layout of this right-padded
    chunk, see :mod:`metaeol_integrations.core.packing`) the rows go end to end in one sequence."""
    inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if inputs_embeds is not None:
        inputs["inputs_embeds"] = inputs_embeds
        del inputs["input_ids"]
    if packed is not None:
        for name in ("input_ids", "inputs_embeds"):
            if name in inputs:
                inputs[name] = packed.pack(inputs[name])
        inputs["attention_mask"] = packed.block_mask()
        inputs["position_ids"] = packed.position_ids()
        inputs[LAYOUT_KEYWORD] = packed
        if prefix_cache is not None:
            inputs[cache_argument] = expand_for_batch(model, prefix_cache, 1)
            inputs["use_cache"] = True
    elif prefix_cache is not None:
        offset = prefix_cache.get_seq_length()
        prefix_mask = attention_mask.new_ones(input_ids.shape[0], offset)
        inputs["attention_mask"] = torch.cat([prefix_mask, attention_mask], dim=1)
        inputs["position_ids"] = offset + position_ids_from_mask(attention_mask)
        inputs[cache_argument] = expand_for_batch(model, prefix_cache, input_ids.shape[0])
        inputs["use_cache"] = True
    elif pass_position_ids:
        inputs["position_ids"] = position_ids_from_mask(attention_mask)
    return inputs


def input_at_last_token(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, target: nn.Module,
    pass_position_ids: bool = True,
) -> torch.Tensor:
    """The first input of submodule ``target`` at each row's last real token, float32; the forward stops there."""
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    last = last_token_index(attention_mask)
    captured: list[torch.Tensor] = []
    owner = threading.get_ident()

    def hook(_module: nn.Module, args: tuple, kwargs: dict | None = None) -> None:
        if threading.get_ident() != owner:  # another thread's forward on the shared model (see last_token_states)
            return
        captured.append(_first_input(args, kwargs)[rows, last].float())
        raise _StopForward

    handle = target.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model(**forward_inputs(model, input_ids, attention_mask, pass_position_ids))
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured[0]


def last_token_states(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    layers: tuple[int, ...],
    num_layers: int,
    pass_position_ids: bool = True,
    prefix_cache: DynamicCache | None = None,
    cache_argument: str | None = None,
    average_layers: bool = True,
    inputs_embeds: torch.Tensor | None = None,
    edits: Sequence[tuple[nn.Module, Edit]] = (),
    packed: bool = False,
    spans: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hidden states of each row's last real token, averaged over ``layers``; shape ``(rows, hidden)``, float32.

    ``inputs_embeds`` replaces the embedding of ``input_ids`` (which still give the shape). ``edits`` is the seam for
    methods that change the computation: each ``(module, edit)`` calls ``edit(x, at)`` on the first input ``x`` of
    that submodule (a decoder layer, an ``o_proj``...) before it runs, where ``at`` (:class:`RowPositions`) locates
    each row's tokens in ``x``; ``edit`` may change ``x`` in place.

    ``packed=True`` runs the right-padded rows end to end as one sequence (:mod:`metaeol_integrations.core.packing`;
    the model must pass :func:`~metaeol_integrations.core.packing.can_pack`): the same states, no padding computed.

    ``spans`` (``(rows, 2)``, ``[start, end)`` columns) reads the mean state over each row's span instead of its last
    token (mean pooling inside a prompt).

    With ``average_layers=False`` the states are stacked instead: shape ``(len(layers), rows, hidden)``.

    ``pass_position_ids`` (see :func:`accepts_position_ids`) sends positions counted over real tokens. With a
    ``prefix_cache`` (see :mod:`metaeol_integrations.core.prefix_cache`), ``input_ids`` are what follows that
    prefix in every row, and run against its keys and values through the ``cache_argument`` of the forward.
    """
    layout = None
    if packed:
        prefix_length = prefix_cache.get_seq_length() if prefix_cache is not None else 0
        layout = PackedRows.from_mask(attention_mask, prefix_length)
    at = RowPositions.of_call(attention_mask, layout)
    last = at(at.last)
    span_tokens = None if spans is None else SpanTokens.of_call(at, spans)

    def read(states: torch.Tensor) -> torch.Tensor:
        return states[last].float() if span_tokens is None else span_tokens.means(states)

    inputs = forward_inputs(model, input_ids, attention_mask, pass_position_ids, prefix_cache, cache_argument,
                             inputs_embeds, layout)
    stacked = read_states(model, inputs, read, layers, num_layers, edits, at)
    return stacked.mean(dim=0) if average_layers else stacked


def read_states(
    model: PreTrainedModel, inputs: dict[str, Any], read: Callable[[torch.Tensor], torch.Tensor],
    layers: Sequence[int], num_layers: int, edits: Sequence[tuple[nn.Module, Edit]] = (),
    at: RowPositions | None = None,
) -> torch.Tensor:
    """One forward call with ``inputs``, returning ``read(states)`` at each of ``layers`` (``hidden_states``
    numbering), stacked: ``(len(layers), ...)``. The pass stops after the deepest layer read. ``edits`` (see
    :func:`last_token_states`) need ``at``."""
    captured: dict[int, torch.Tensor] = {}
    intermediate = sorted(set(index for index in layers if index < num_layers))
    stop_early = max(layers) < num_layers
    owner = threading.get_ident()
    handles = []

    def make_hook(index: int):
        def hook(_module: nn.Module, args: tuple, kwargs: dict | None = None) -> None:
            # Hooks sit on a shared model: another thread's forward must not write into this call's results.
            # That thread may also call this hook without ``kwargs``: torch registers a with-kwargs hook in two
            # steps, and a forward running between them (or while the hook is being removed) sees only the first.
            if threading.get_ident() != owner:
                return
            captured[index] = read(_first_input(args, kwargs))
            if stop_early and index == intermediate[-1]:
                raise _StopForward

        return hook

    def make_edit(edit: Edit):
        def hook(_module: nn.Module, args: tuple, kwargs: dict | None = None) -> None:
            if threading.get_ident() != owner:
                return
            edit(_first_input(args, kwargs), at)

        return hook

    # Edits first: a layer's read sees the state that layer receives (only the edited rows differ anyway).
    handles = [module.register_forward_pre_hook(make_edit(edit), with_kwargs=True) for module, edit in edits]
    if intermediate:
        layer_list = decoder_layers(model)
        handles += [layer_list[index].register_forward_pre_hook(make_hook(index), with_kwargs=True)
                    for index in intermediate]
    try:
        output = model(**inputs)
        captured[num_layers] = read(output.last_hidden_state)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([captured[index] for index in layers])
