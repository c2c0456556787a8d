"""Token Prepending (Fu et al., ACL 2025, arXiv 2412.11556): a placeholder before the sentence that, in the early
decoder layers, carries the last token's state, so the sentence's tokens can attend to a summary of it.

- **Template.** ``<PST> `` is inserted before the quote that opens the slot (``this sentence : <PST> "{sentence}"``,
  as in the official code); a template without that quote gets ``<PST>`` right before the slot.
- **Token.** No vocabulary change: the prompt is tokenised in two parts around ``<PST>`` (the part before with the
  tokenizer's special tokens, the part after without, which is how ``transformers`` splits text around an added
  token), and the placeholder's position gets a fixed, seeded Gaussian vector through ``inputs_embeds``.
- **Copy.** Before each decoder layer ``start <= i < exit`` (0-based, ``exit`` exclusive, the official code's
  convention) the last real token's hidden state is copied into the placeholder's position; one forward pass.
- **Cache.** Only the tokens before ``<PST>`` are shared across sentences; the placeholder's keys and values depend
  on the sentence from layer ``start`` on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metaeol_integrations.core.backbone import decoder_layers
from metaeol_integrations.core.methods import CallInputs, MethodContext
from metaeol_integrations.core.readout import RowPositions
from metaeol_integrations.core.templates import PromptTemplate
from metaeol_integrations.errors import LayerError

PLACEHOLDER = "<PST>"
# Marks the placeholder in token id lists; never a real token id, replaced by the placeholder vector.
PLACEHOLDER_ID = -1
# The published ranges, for LLaMA2-7B (32 layers): copy before layers 1..6.
DEFAULT_RANGE = (1, 7)
PLACEHOLDER_SEED = 3407


@dataclass(frozen=True)
class TokenPrepending:
    """Where the copy happens: before decoder layers ``start <= i < exit`` (0-based)."""

    start: int = DEFAULT_RANGE[0]
    exit: int = DEFAULT_RANGE[1]

    @classmethod
    def coerce(cls, value: bool | Sequence[int] | TokenPrepending | None) -> TokenPrepending | None:
        """``True`` (published range), ``(start, exit)``, an instance, or ``False``/``None`` (off)."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, TokenPrepending):
            return value
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            return cls(int(value[0]), int(value[1]))
        raise LayerError(f"token_prepending must be True, False or (start, exit), not {value!r}.")

    def check(self, num_decoder_layers: int) -> None:
        if not 1 <= self.start < self.exit <= num_decoder_layers:
            raise LayerError(
                f"token_prepending=({self.start}, {self.exit}) needs 1 <= start < exit <= {num_decoder_layers} (the "
                "model's decoder layers, 0-based, exit exclusive; layer 0's input, the embeddings, is never "
                "replaced). Fix: e.g. token_prepending=(1, 7)."
            )

    def to_config(self) -> list[int]:
        return [self.start, self.exit]

    def bind(self, context: MethodContext) -> BoundTokenPrepending:
        """The run-time part for one model (a :class:`~metaeol_integrations.core.methods.BoundMethod`)."""
        self.check(context.num_layers)
        return BoundTokenPrepending(self, context.model)


class BoundTokenPrepending:
    """Token Prepending on one model: the placeholder in every prompt, its vector, and the copies."""

    marks_slot = True

    def __init__(self, settings: TokenPrepending, model: torch.nn.Module) -> None:
        self.settings, self.model = settings, model

    def features(self, texts: Sequence[str], prompt: str) -> dict[str, Any]:
        return {}

    def prepare(self, features: dict[str, Any]) -> None:
        return None

    def call_inputs(self, chunk_ids: torch.Tensor, rows: torch.Tensor, num_prompts: int, prepared: Any) -> CallInputs:
        placeholder = placeholder_positions(chunk_ids)

        def copy_last_into_placeholder(hidden: torch.Tensor, at: RowPositions) -> None:
            hidden[at(placeholder)] = hidden[at(at.last)]

        layers = decoder_layers(self.model)
        edits = [(layers[index], copy_last_into_placeholder) for index in range(self.settings.start, self.settings.exit)]
        return CallInputs(embed_with_placeholder(self.model, chunk_ids), edits)


def with_placeholder(template: PromptTemplate) -> PromptTemplate:
    """The template with ``<PST> `` before the slot's opening quote (or ``<PST>`` right before the slot)."""
    if template.prefix.endswith('"'):
        return PromptTemplate(template.prefix[:-1] + PLACEHOLDER + ' "' + "{sentence}" + template.suffix)
    return PromptTemplate(template.prefix + PLACEHOLDER + "{sentence}" + template.suffix)


def split_at_placeholder(prompt: str) -> tuple[str, str] | None:
    """The text before and after the template's ``<PST>`` (the first one: user text comes later in the prompt)."""
    before, found, after = prompt.partition(PLACEHOLDER)
    return (before, after) if found else None


def placeholder_vector(hidden_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The fixed input vector of the placeholder: N(0, 1), seeded (its value barely matters: TP paper, Table 4)."""
    generator = torch.Generator().manual_seed(PLACEHOLDER_SEED)
    return torch.randn(hidden_size, generator=generator).to(dtype=dtype, device=device)


def embed_with_placeholder(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """``inputs_embeds`` for ids that contain :data:`PLACEHOLDER_ID`."""
    is_placeholder = input_ids == PLACEHOLDER_ID
    embeddings = model.get_input_embeddings()(input_ids.clamp(min=0))
    vector = placeholder_vector(embeddings.shape[-1], embeddings.dtype, embeddings.device)
    return torch.where(is_placeholder.unsqueeze(-1), vector, embeddings)


def placeholder_positions(input_ids: torch.Tensor) -> torch.Tensor:
    """Each row's placeholder position (its first :data:`PLACEHOLDER_ID`); every row must have one."""
    is_placeholder = input_ids == PLACEHOLDER_ID
    if not bool(is_placeholder.any(dim=1).all()):
        raise ValueError("Token Prepending: a prompt lost its placeholder.")
    return is_placeholder.to(torch.long).argmax(dim=1)
