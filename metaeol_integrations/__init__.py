"""MetaEOL sentence embeddings from any decoder-only LLM, as a sentence-transformers model."""

from __future__ import annotations

from metaeol_integrations._version import __version__

from metaeol_integrations.core.module import MetaEOL
from metaeol_integrations.core.recipe import Recipe
from metaeol_integrations.core.templates import (
    METAEOL_TEMPLATES,
    PROMPTEOL_TEMPLATES,
    MetaTask,
    PromptTemplate,
    TemplateSet,
    preprocess_sentence,
)
from metaeol_integrations.errors import (
    ClusterResourcesError,
    DataNotFoundError,
    IncomparableRunsError,
    InputIdError,
    LayerError,
    MetaEOLError,
    ModelNotAvailableError,
    QuantizationError,
    SequenceLengthError,
    TemplateError,
    UnknownModelError,
    UnsupportedDTypeError,
    UnsupportedModelError,
    WeightsModeError,
)
from metaeol_integrations.loading import export, load, save
from metaeol_integrations.postprocessing import CorpusCenter, add_embed_filter, fit_center
from metaeol_integrations.presets import DEFAULT_PRESET, PRESETS, Preset

__all__ = [
    "DEFAULT_PRESET",
    "ClusterResourcesError",
    "CorpusCenter",
    "DataNotFoundError",
    "IncomparableRunsError",
    "InputIdError",
    "LayerError",
    "METAEOL_TEMPLATES",
    "MetaEOL",
    "MetaEOLError",
    "MetaTask",
    "ModelNotAvailableError",
    "PRESETS",
    "PROMPTEOL_TEMPLATES",
    "Preset",
    "PromptTemplate",
    "QuantizationError",
    "Recipe",
    "SequenceLengthError",
    "TemplateError",
    "TemplateSet",
    "UnknownModelError",
    "UnsupportedDTypeError",
    "UnsupportedModelError",
    "WeightsModeError",
    "__version__",
    "add_embed_filter",
    "export",
    "fit_center",
    "load",
    "preprocess_sentence",
    "save",
]
