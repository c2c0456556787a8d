"""The seam for prompting methods that change how a prompt is computed (Token Prepending, Contrastive Prompting).

A method is one file with two parts: its settings (a frozen dataclass that is a :class:`~metaeol_integrations.core.
recipe.Recipe` field: ``coerce``, ``to_config``, ``bind``) and what it does at run time, a :class:`BoundMethod` bound to
one model:

1. **tokenisation**: ``marks_slot`` asks the prompt tokenizer to put the ``<PST>`` placeholder before the text;
2. **features**: ``features(texts, prompt)`` adds inputs of its own to a batch (e.g. an auxiliary prompt's ids);
3. **once per batch**: ``prepare(features)`` runs what every call of the batch needs (e.g. an auxiliary pass);
4. **per forward call**: ``call_inputs(...)`` gives ``inputs_embeds`` and *edits* (see
   :func:`~metaeol_integrations.core.readout.last_token_states`).

Adding a method: write its file, add its settings as a ``Recipe`` field, and name that field in :data:`METHOD_FIELDS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from metaeol_integrations.core.readout import Edit

# The registration: Recipe fields holding a method's settings, in the order their edits apply within a call.
METHOD_FIELDS = ("token_prepending", "contrastive")


@dataclass(frozen=True)
class MethodContext:
    """What a method may use when it is bound to a model."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    num_layers: int
    max_seq_length: int
    max_tokens_per_forward: int
    pass_position_ids: bool


@dataclass
class CallInputs:
    """What the methods add to one forward call."""

    inputs_embeds: torch.Tensor | None = None
    edits: list[tuple[nn.Module, Edit]] = field(default_factory=list)

    def merge(self, other: CallInputs) -> CallInputs:
        if self.inputs_embeds is not None and other.inputs_embeds is not None:
            raise ValueError("Two prompting methods both replace inputs_embeds; they cannot be combined.")
        embeds = self.inputs_embeds if other.inputs_embeds is None else other.inputs_embeds
        return CallInputs(embeds, self.edits + other.edits)


class BoundMethod(Protocol):
    """A method's run-time part, bound to one model (see the module docstring)."""

    marks_slot: bool

    def features(self, texts: Sequence[str], prompt: str) -> dict[str, Any]: ...

    def prepare(self, features: dict[str, Any]) -> Any: ...

    def call_inputs(self, chunk_ids: torch.Tensor, rows: torch.Tensor, num_prompts: int, prepared: Any) -> CallInputs: ...


class MethodSettings(Protocol):
    """A method's settings, as a Recipe holds them."""

    def to_config(self) -> Any: ...

    def bind(self, context: MethodContext) -> BoundMethod:
        """Check the settings against the model (raising a clear error) and return the run-time part."""
        ...


def bind_methods(recipe: Any, context: MethodContext) -> tuple[BoundMethod, ...]:
    """The recipe's active methods, bound to the model, in :data:`METHOD_FIELDS` order."""
    return tuple(settings.bind(context) for name in METHOD_FIELDS if (settings := getattr(recipe, name)) is not None)


def marks_slot(methods: Sequence[BoundMethod]) -> bool:
    """Whether any method needs the ``<PST>`` placeholder in the prompts."""
    return any(method.marks_slot for method in methods)
