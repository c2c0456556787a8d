"""Build a ``SentenceTransformer`` around the MetaEOL module from any name ``sources.resolve_source`` understands."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer

from metaeol_integrations.core.backbone import check_dtype_on_device
from metaeol_integrations.core.module import MetaEOL
from metaeol_integrations.core.precision import PrecisionChoice
from metaeol_integrations.core.recipe import Recipe
from metaeol_integrations.errors import QuantizationError, UnknownModelError
from metaeol_integrations.presets import DEFAULT_PRESET, Preset
from metaeol_integrations.core.persistence import check_weights_mode
from metaeol_integrations.sources import (
    GGUF,
    HUB_LLM,
    HUB_METAEOL,
    LLM_FOLDER,
    METAEOL_FOLDER,
    PRESET,
    Source,
    resolve_source,
)

logger = logging.getLogger(__name__)


# Names the dtype load() uses when model_kwargs names none (e.g. "float32" for exact vectors everywhere).
DTYPE_ENVIRONMENT = "METAEOL_DTYPE"


def default_dtype() -> str:
    """``load``'s dtype when ``model_kwargs`` names none: ``$METAEOL_DTYPE``, else ``"auto"`` (docs/decisions.md)."""
    return os.environ.get(DTYPE_ENVIRONMENT) or "auto"


def with_default_dtype(model_kwargs: dict[str, Any] | None, dtype: Any) -> dict[str, Any]:
    """A copy of ``model_kwargs`` with ``dtype`` unless it already names one (``dtype`` or ``torch_dtype``)."""
    model_kwargs = dict(model_kwargs or {})
    if "dtype" not in model_kwargs and "torch_dtype" not in model_kwargs:
        model_kwargs["dtype"] = dtype
    return model_kwargs


def load(
    name_or_path: str | Source = DEFAULT_PRESET,
    recipe: Recipe | None = None,
    *,
    model_kwargs: dict[str, Any] | None = None,
    processor_kwargs: dict[str, Any] | None = None,
    config_kwargs: dict[str, Any] | None = None,
    cache_folder: str | None = None,
    device: str | None = None,
    revision: str | None = None,
    token: bool | str | None = None,
    **options: Any,
) -> SentenceTransformer:
    """Load a MetaEOL model as a ``SentenceTransformer``.

    ``name_or_path`` is a preset name (``metaeol info`` lists them), a saved MetaEOL SentenceTransformer folder,
    a Hugging Face model folder or hub id of a decoder-only LLM, or a ``.gguf`` file (or what
    :func:`~metaeol_integrations.sources.resolve_source` made of one, so a caller that resolved it does not look it
    up again). Recipe options
    (the fields of :class:`~metaeol_integrations.Recipe`, ``Recipe.option_names()``), given as keywords or as a
    ``recipe``, override the preset's or folder's values; a keyword
    set to None changes nothing. ``model_kwargs`` go to ``AutoModel`` (``trust_remote_code``...), except ``dtype``: ``"auto"`` (default, or
    ``$METAEOL_DTYPE``: bfloat16 where the hardware runs it faster, else float32; ``core/precision.py``),
    ``"float32"`` (exact, the paper's), ``"bfloat16"`` / ``"float16"`` (16-bit attention and MLP blocks, float32
    residual stream and norms). A hub id
    may name a shared MetaEOL model (a repository with ``modules.json``, e.g. one written by ``metaeol export``) or a
    base LLM; ``revision`` and ``token`` apply to that repository, and the hub cache settings (``HF_HOME``,
    ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``) apply as everywhere in ``transformers``. Other keywords (``prompts``,
    ``truncate_dim``, ``similarity_fn_name``...) go to ``SentenceTransformer``.
    """
    recipe_options = {key: options.pop(key) for key in Recipe.option_names() if key in options}
    overrides = {key: value for key, value in recipe_options.items() if value is not None}
    planned = (recipe or Recipe()).with_overrides(overrides)  # a bad option fails here, before any weights load
    sentence_transformer_kwargs = {"similarity_fn_name": "cosine", **options}
    backbone_kwargs = dict(model_kwargs=with_default_dtype(model_kwargs, default_dtype()),
                           processor_kwargs=processor_kwargs, config_kwargs=config_kwargs, cache_folder=cache_folder)
    if planned.quantize is not None:
        device = _int8_device(device)

    source = (name_or_path if isinstance(name_or_path, Source)
              else resolve_source(str(name_or_path), revision=revision, token=token, cache_folder=cache_folder))
    if source.kind == PRESET:
        preset = source.preset
        if preset.float32_under_auto and backbone_kwargs["model_kwargs"].get("dtype") == "auto":
            backbone_kwargs["model_kwargs"] = {**backbone_kwargs["model_kwargs"], "dtype": PrecisionChoice(
                torch.float32, f"auto: float32 for this preset, {preset.float32_under_auto}")}
        module = MetaEOL(preset.base_model_source(), (recipe or preset.recipe).with_overrides(overrides),
                         base_model=preset.base_model_label, device=device, **backbone_kwargs)
        model = SentenceTransformer(modules=[module], device=device, **sentence_transformer_kwargs)
        _add_preset_postprocessing(model, preset)
        _check_dtype(model)
        _attach_model_card(model, preset)
        return model
    if source.kind in (METAEOL_FOLDER, HUB_METAEOL):
        _check_module_types(source)
        if source.kind == HUB_METAEOL:
            sentence_transformer_kwargs.update(revision=revision, token=token)
        return _load_sentence_transformer(source.location, device, recipe, overrides, backbone_kwargs,
                                          sentence_transformer_kwargs)
    if source.kind == HUB_LLM:
        hub = {key: value for key, value in (("revision", revision), ("token", token)) if value is not None}
        backbone_kwargs["model_kwargs"] = {**hub, **backbone_kwargs["model_kwargs"]}
    elif source.kind not in (LLM_FOLDER, GGUF):
        _check_module_types(source)
        raise UnknownModelError(f"The first module of {source.name} is {source.module_types[0]!r}, not MetaEOL.")
    module = MetaEOL(source.location, planned, device=device, **backbone_kwargs)
    model = SentenceTransformer(modules=[module], device=device, **sentence_transformer_kwargs)
    _check_dtype(model)
    _attach_model_card(model)
    return model


def _check_module_types(source: Source) -> None:
    refused = source.refused_module_type()
    if refused is not None:
        raise UnknownModelError(
            f"{source.name} names the module class {refused!r}, which metaeol_integrations.load does not import. "
            "Fix: load it with SentenceTransformer(name, trust_remote_code=True) if you trust its code."
        )


def _add_preset_postprocessing(model: SentenceTransformer, preset: Preset) -> None:
    """A preset's EmbedFilter and shipped centering, as modules after MetaEOL (saved with the model).

    The shipped mean was fitted on the preset's own vectors, so it is left out when the options change what the
    vectors are (templates, layer, methods...; not max_seq_length, which only cuts long texts)."""
    from metaeol_integrations.postprocessing import add_embed_filter
    from metaeol_integrations.postprocessing.center import shipped_center
    from metaeol_integrations.postprocessing.stack import place_module

    if preset.embed_filter is not None:
        add_embed_filter(model, preset.embed_filter)
    if preset.center is not None:
        def geometry(recipe: Recipe) -> dict[str, Any]:
            return {key: value for key, value in recipe.vector_identity().items() if key != "max_seq_length"}

        if geometry(model[0].recipe) == geometry(preset.recipe):
            place_module(model, shipped_center(*preset.center))
        else:
            logger.info("%s: its shipped centering fits its own recipe and is left out with these options "
                        "(fit_center fits one for yours).", preset.name)


def _load_sentence_transformer(
    name: str, device: str | None, recipe: Recipe | None, overrides: dict[str, Any], backbone_kwargs: dict[str, Any],
    sentence_transformer_kwargs: dict[str, Any],
) -> SentenceTransformer:
    # trust_remote_code=True only imports our own module class (checked above); it is not passed to the LLM.
    model = SentenceTransformer(name, trust_remote_code=True, device=device, **backbone_kwargs,
                                **sentence_transformer_kwargs)
    module = model[0]
    if not isinstance(module, MetaEOL):
        raise UnknownModelError(f"The first module of this folder is {type(module).__name__}, not MetaEOL.")
    if recipe is not None or overrides:
        module.recipe = (recipe or module.recipe).with_overrides(overrides)
    if module.quantize is not None and device is None:
        model.to("cpu")  # a folder saved in int8 mode computes on the CPU wherever sentence-transformers would go
    _check_dtype(model)
    if not getattr(model, "_model_card_text", None):
        _attach_model_card(model)  # a folder without a README gets ours when saved; one with a README keeps it
    return model


def _attach_model_card(model: SentenceTransformer, preset: Preset | None = None) -> None:
    """Make sentence-transformers' own card step (save, push_to_hub) write the MetaEOL card."""
    from metaeol_integrations.sharing.model_card import MetaEOLModelCardData

    card = MetaEOLModelCardData(
        measured=preset.measured if preset else None, card_base_model=preset.card_base_model if preset else None,
        fusion=preset.fusion if preset else None, fusion_measured=preset.fusion_measured if preset else None,
        local_files_only=True,
    )
    card.register_model(model)
    model.model_card_data = card


def _check_dtype(model: SentenceTransformer) -> None:
    module = model[0]
    if isinstance(module, MetaEOL):
        check_dtype_on_device(module.precision.dtype, model.device)


def _int8_device(device: str | None) -> str:
    """int8 mode runs on the CPU: default to it, and refuse another device before loading anything."""
    if device is None:
        return "cpu"
    if torch.device(device).type != "cpu":
        raise QuantizationError(
            f"quantize='int8' computes on the CPU, not on {device!r}. Fix: device='cpu', or drop quantize on a GPU "
            "(model_kwargs={'dtype': torch.bfloat16} is the fast mode there)."
        )
    return device


def save(model: SentenceTransformer, output_dir: str | os.PathLike, weights: str | None = None) -> Path:
    """Save a MetaEOL model like ``model.save``, choosing how the LLM is stored.

    ``weights="reference"`` writes a weightless folder that names the base model by hub id (its config, model card
    and nothing else); ``"copy"`` writes the weights too; ``None`` keeps the module's own setting (reference when it
    was loaded by hub id, else copy).
    """
    module = model[0]
    if not isinstance(module, MetaEOL):
        raise UnknownModelError(f"The first module of this model is {type(module).__name__}, not MetaEOL.")
    previous = module.weights
    if weights is not None:
        module.weights = weights
    try:
        model.save(str(output_dir))
    finally:
        module.weights = previous
    return Path(output_dir)


def export(name_or_path: str, output_dir: str | os.PathLike, weights: str | None = None, **load_kwargs: Any) -> Path:
    """Write a SentenceTransformer folder that ``SentenceTransformer(output_dir, trust_remote_code=True)`` loads.

    ``weights``: ``"reference"`` (default when the base LLM is a hub id) writes no weights and names the base by
    hub id and revision; it is written without loading or fetching anything. ``"copy"`` (default for local folders
    and packaged GGUF bases) loads the model and writes its weights. A local base cannot be referenced.
    ``load_kwargs`` are :func:`load`'s (recipe options included).
    """
    from metaeol_integrations.sharing.reference import write_reference_folder

    model_kwargs = load_kwargs.get("model_kwargs") or {}
    revision = load_kwargs.get("revision") or model_kwargs.get("revision")
    source = resolve_source(str(name_or_path), revision=revision, token=load_kwargs.get("token"),
                            cache_folder=load_kwargs.get("cache_folder"))
    hub_base = _hub_base(source)
    if weights is None and hub_base is not None:
        weights = "reference"
    if weights == "reference" and hub_base is not None:
        base, preset = hub_base
        options = {key: load_kwargs[key] for key in Recipe.option_names() if key in load_kwargs}
        start = load_kwargs.get("recipe") or (preset.recipe if preset is not None else Recipe())
        recipe = start.with_overrides(options)
        return write_reference_folder(output_dir, base, recipe, revision=revision,
                                      measured=preset.measured if preset else None)
    if weights == "reference" and source.kind in (PRESET, LLM_FOLDER, GGUF):
        # A packaged (GGUF) preset or a local LLM: fail before loading it; this raises with the fix.
        check_weights_mode("reference", source.preset.base_model_label if source.preset else source.location)
    # The written weights are the exact float32 ones unless a dtype is asked for (auto could store 16-bit blocks).
    model_kwargs = with_default_dtype(load_kwargs.pop("model_kwargs", None), "float32")
    return save(load(source, model_kwargs=model_kwargs, **load_kwargs), output_dir, weights=weights)


def _hub_base(source: Source) -> tuple[str, Preset | None] | None:
    """The hub id of the base LLM that ``source`` stands for, when it can be known without loading."""
    if source.kind == PRESET:
        return (source.preset.base_model, source.preset) if isinstance(source.preset.base_model, str) else None
    if source.kind == HUB_LLM:
        return source.location, None
    return None  # a shared MetaEOL model is loaded and saved again; local bases cannot be referenced
