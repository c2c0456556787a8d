"""Contrastive Prompting (Cheng et al., arXiv 2505.12831), attention-head variant: the sentence's representation
in an auxiliary prompt that asks for its *irrelevant* information is subtracted, at one layer, from the normal
prompt's, so what remains emphasises the sentence's core meaning.

- **Auxiliary pass.** One per text, shared by all templates: the auxiliary prompt filled with the same sentence,
  run until decoder layer ``layer`` (0-based; the paper's l = layer + 1) has computed its attention; the input of
  that layer's ``o_proj`` (the concatenated heads, softmax(QK^T/sqrt(d))V) at the last token is ``v_aux``.
- **Normal pass.** The last token's ``o_proj`` input ``v`` at the same layer is replaced before ``o_proj`` runs:
  NS ``alpha * (v - v_aux)``; NR ``(v - v_aux) * |v| / (|v - v_aux| + 1e-7)`` (norms over the whole vector).
  Only the last position changes, so the templates' prefix cache stays valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from metaeol_integrations.core.backbone import decoder_layers
from metaeol_integrations.core.batching import length_buckets
from metaeol_integrations.core.methods import CallInputs, MethodContext
from metaeol_integrations.core.readout import RowPositions, input_at_last_token
from metaeol_integrations.core.templates import TemplateSet
from metaeol_integrations.core.tokenization import PromptTokenizer, pad_batch
from metaeol_integrations.errors import LayerError

AUXILIARY_TEMPLATE = 'The irrelevant information of this sentence : "{sentence}" means in one word:"'
MODES = ("ns", "nr")


@dataclass(frozen=True)
class ContrastivePrompting:
    """Where and how: decoder layer (0-based), ``mode`` "ns" (scaled, with ``alpha``) or "nr" (norm-rescaled)."""

    layer: int = 4
    mode: str = "ns"
    alpha: float = 2.0
    auxiliary: str = AUXILIARY_TEMPLATE

    @classmethod
    def coerce(cls, value: bool | Mapping | ContrastivePrompting | None) -> ContrastivePrompting | None:
        """``True`` (PromptEOL's published setting: l=5, NS, alpha 2), a mapping of fields, an instance, or off."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, ContrastivePrompting):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"layer", "mode", "alpha", "auxiliary"})
            if unknown:
                raise LayerError(f"Unknown contrastive option(s) {unknown}; use layer, mode, alpha, auxiliary.")
            return cls(**value)
        raise LayerError(f"contrastive must be True, False or a mapping like {{'layer': 4, 'mode': 'ns'}}, not {value!r}.")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LayerError(f"contrastive mode must be 'ns' or 'nr', not {self.mode!r}.")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int):
            raise LayerError(f"contrastive layer must be an int (0-based decoder layer), not {self.layer!r}.")

    def check(self, num_decoder_layers: int) -> None:
        if not 0 <= self.layer < num_decoder_layers:
            raise LayerError(
                f"contrastive layer {self.layer} does not exist: decoder layers are 0..{num_decoder_layers - 1} "
                "(0-based; the paper's l is layer + 1). Fix: e.g. contrastive={'layer': 4}."
            )

    def to_config(self) -> dict:
        return asdict(self)

    def bind(self, context: MethodContext) -> BoundContrastivePrompting:
        """The run-time part for one model (a :class:`~metaeol_integrations.core.methods.BoundMethod`)."""
        self.check(context.num_layers)
        return BoundContrastivePrompting(self, context)

    def combine(self, normal: torch.Tensor, auxiliary: torch.Tensor) -> torch.Tensor:
        """The replacement of the last token's ``o_proj`` input."""
        difference = normal - auxiliary
        if self.mode == "ns":
            return self.alpha * difference
        scale = normal.norm(dim=-1, keepdim=True) / (difference.norm(dim=-1, keepdim=True) + 1e-7)
        return difference * scale


def output_projection(layer: nn.Module) -> nn.Module:
    """The attention output projection (``o_proj``) of a decoder layer."""
    attention = getattr(layer, "self_attn", None)
    projection = getattr(attention, "o_proj", None)
    if projection is None:
        raise LayerError(
            f"Contrastive Prompting needs an attention block with an o_proj ({type(layer).__name__} has none). "
            "Fix: use a Llama-style model (Llama, Mistral, Qwen2, Gemma, SmolLM2)."
        )
    return projection


class BoundContrastivePrompting:
    """Contrastive Prompting on one model: the auxiliary prompt's ids, its pass, and the edit of ``o_proj``'s input."""

    marks_slot = False

    def __init__(self, settings: ContrastivePrompting, context: MethodContext) -> None:
        self.settings, self.context = settings, context
        output_projection(decoder_layers(context.model)[settings.layer])  # fails early without an o_proj
        self.auxiliary = PromptTokenizer(context.tokenizer, TemplateSet.coerce(settings.auxiliary),
                                         context.max_seq_length)

    @property
    def target(self) -> nn.Module:
        """The layer's ``o_proj``, looked up per use: int8 mode replaces it after binding."""
        return output_projection(decoder_layers(self.context.model)[self.settings.layer])

    def features(self, texts: Sequence[str], prompt: str) -> dict[str, Any]:
        ids = self.auxiliary.tokenize(texts, prefix=prompt).input_ids
        padded = pad_batch(ids, self.context.tokenizer.pad_token_id, "right")
        return {"aux_input_ids": padded["input_ids"], "aux_attention_mask": padded["attention_mask"]}

    def prepare(self, features: dict[str, Any]) -> torch.Tensor:
        """``v_aux`` per text: one auxiliary pass for all templates, stopped at the layer."""
        ids, mask = features["aux_input_ids"], features["aux_attention_mask"]
        target, out = self.target, None
        for chunk in length_buckets(mask.sum(dim=1), self.context.max_tokens_per_forward):
            width = int(mask[chunk].sum(dim=1).max())
            values = input_at_last_token(self.context.model, ids[chunk, :width], mask[chunk, :width], target,
                                         self.context.pass_position_ids)
            if out is None:
                out = torch.empty(ids.shape[0], values.shape[-1], device=ids.device)
            out[chunk] = values
        return out

    def call_inputs(self, chunk_ids: torch.Tensor, rows: torch.Tensor, num_prompts: int, prepared: Any) -> CallInputs:
        settings, v_aux = self.settings, prepared[rows // num_prompts]  # rows are text-major: row // K is the text

        def subtract_auxiliary(values: torch.Tensor, at: RowPositions) -> None:
            last = at(at.last)
            values[last] = settings.combine(values[last].float(), v_aux).to(values.dtype)

        return CallInputs(edits=[(self.target, subtract_auxiliary)])
