"""Build a ``SentenceTransformer`` around the MetaEOL module from a preset, a folder or a ``.gguf`` file."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer

from metaeol_integrations.core.backbone import check_dtype_on_device, is_hub_id
from metaeol_integrations.core.module import MetaEOL
from metaeol_integrations.core.templates import TemplateSpec
from metaeol_integrations.errors import QuantizationError, UnknownModelError
from metaeol_integrations.presets import DEFAULT_PRESET, PRESETS, Preset

_MODULE_TYPE = f"{MetaEOL.__module__}.{MetaEOL.__name__}"
# A saved folder may only name these module classes: we pass trust_remote_code=True on the user's behalf to import
# our own class, and that must not let a folder import anything else.
_ALLOWED_MODULE_PREFIXES = ("sentence_transformers.", "metaeol_integrations.postprocessing.")



def _is_sentence_transformer_folder(path: Path) -> bool:
    return (path / "modules.json").is_file()


def _check_module_types(modules_json: Path, name: str) -> None:
    with open(modules_json, encoding="utf-8") as handle:
        modules = json.load(handle)
    for module in modules:
        module_type = module.get("type", "")
        if module_type != _MODULE_TYPE and not module_type.startswith(_ALLOWED_MODULE_PREFIXES):
            raise UnknownModelError(
                f"{name} names the module class {module_type!r}, which metaeol_integrations.load does not import. "
                "Fix: load it with SentenceTransformer(name, trust_remote_code=True) if you trust its code."
            )


def _hub_modules_json(repo_id: str, revision: str | None, token: Any, cache_folder: str | None) -> Path | None:
    """The ``modules.json`` of a hub repository (through the hub cache), or None when it has none or cannot be
    reached: then the id names a base LLM, whose own loading reports what is wrong."""
    import httpx
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, "modules.json", revision=revision, token=token, cache_dir=cache_folder))
    # Not found, offline and not cached, gated, no network (hub errors are OSErrors; httpx's are not).
    except (OSError, ValueError, RuntimeError, EntryNotFoundError, httpx.HTTPError):
        return None


def _unknown(name: str) -> UnknownModelError:
    close = difflib.get_close_matches(name, list(PRESETS), n=3, cutoff=0.5)
    suggestion = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownModelError(
        f"{name!r} is not a preset, a model folder, a .gguf file or a hub id.{suggestion} "
        f"Fix: run `metaeol info` for the presets, or pass a path (default: {DEFAULT_PRESET!r})."
    )


def load(
    name_or_path: str = DEFAULT_PRESET,
    *,
    templates: TemplateSpec | None = None,
    task_templates: Mapping[str, TemplateSpec] | None = None,
    layer: int | Sequence[int] | None = None,
    max_seq_length: int | None = None,
    prefix_cache: bool | None = None,
    max_tokens_per_forward: int | None = None,
    token_prepending: bool | Sequence[int] | None = None,
    contrastive: bool | Mapping[str, Any] | None = None,
    quantize: str | None = None,
    chunk_tokens: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    processor_kwargs: dict[str, Any] | None = None,
    config_kwargs: dict[str, Any] | None = None,
    cache_folder: str | None = None,
    device: str | None = None,
    revision: str | None = None,
    token: bool | str | None = None,
    **sentence_transformer_kwargs: Any,
) -> SentenceTransformer:
    """Load a MetaEOL model as a ``SentenceTransformer``.

    ``name_or_path`` is a preset name (``metaeol info`` lists them), a saved MetaEOL SentenceTransformer folder,
    a Hugging Face model folder or hub id of a decoder-only LLM, or a ``.gguf`` file. ``templates``,
    ``task_templates`` (e.g. ``{"query": "prompteol"}`` for ``encode_query``), ``layer``, ``max_seq_length``,
    ``prefix_cache``, ``max_tokens_per_forward``, ``token_prepending`` (``True`` or ``(start, exit)``) and
    ``contrastive`` (``True`` or ``{"layer", "mode", "alpha"}``; both in ``docs/methods.md``) and ``quantize``
    (``"int8"``: int8 Linear layers on the CPU, docs/performance.md) and ``chunk_tokens`` (chunked pooling of long
    texts: windows of that many tokens, vectors averaged; docs/retrieval.md) override the preset's or folder's values; ``model_kwargs`` go to ``AutoModel`` (``dtype``,
    ``trust_remote_code``...). A hub id may name a shared MetaEOL model (a repository with ``modules.json``, e.g.
    one written by ``metaeol export``) or a base LLM; ``revision`` and ``token`` apply to that repository, and
    the hub cache settings (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``) apply as everywhere in
    ``transformers``. Other keywords (``prompts``, ``truncate_dim``, ``similarity_fn_name``...) go to
    ``SentenceTransformer``.
    """
    options = {
        "templates": templates, "task_templates": task_templates, "layer": layer, "max_seq_length": max_seq_length,
        "prefix_cache": prefix_cache, "max_tokens_per_forward": max_tokens_per_forward,
        "token_prepending": token_prepending, "contrastive": contrastive, "quantize": quantize,
        "chunk_tokens": chunk_tokens,
    }
    overrides = {key: value for key, value in options.items() if value is not None}
    backbone_kwargs = dict(
        model_kwargs=model_kwargs, processor_kwargs=processor_kwargs, config_kwargs=config_kwargs,
        cache_folder=cache_folder,
    )
    sentence_transformer_kwargs.setdefault("similarity_fn_name", "cosine")
    if quantize is not None:
        device = _int8_device(device)
    path = Path(os.path.expanduser(str(name_or_path)))

    if str(name_or_path) in PRESETS:
        preset = PRESETS[str(name_or_path)]
        settings = {**preset.settings(), **overrides}
        module = MetaEOL(preset.base_model_source(), base_model=preset.base_model_label, **settings, **backbone_kwargs)
        model = SentenceTransformer(modules=[module], device=device, **sentence_transformer_kwargs)
        _add_preset_postprocessing(model, preset)
        _check_dtype(model)
        _attach_model_card(model, preset)
        return model
    if path.is_dir() and _is_sentence_transformer_folder(path):
        _check_module_types(path / "modules.json", str(path))
        return _load_sentence_transformer(str(path), device, overrides, backbone_kwargs, sentence_transformer_kwargs)
    if is_hub_id(str(name_or_path)):
        modules_json = _hub_modules_json(str(name_or_path), revision, token, cache_folder)
        if modules_json is not None:  # a shared MetaEOL model
            _check_module_types(modules_json, str(name_or_path))
            return _load_sentence_transformer(
                str(name_or_path), device, overrides, backbone_kwargs,
                {**sentence_transformer_kwargs, "revision": revision, "token": token},
            )
        hub = {key: value for key, value in (("revision", revision), ("token", token)) if value is not None}
        backbone_kwargs["model_kwargs"] = {**hub, **(model_kwargs or {})}
        module = MetaEOL(str(name_or_path), **overrides, **backbone_kwargs)
    elif path.is_dir() or path.suffix == ".gguf":
        module = MetaEOL(str(path), **overrides, **backbone_kwargs)
    else:
        raise _unknown(str(name_or_path))

    model = SentenceTransformer(modules=[module], device=device, **sentence_transformer_kwargs)
    _check_dtype(model)
    _attach_model_card(model)
    return model


def _add_preset_postprocessing(model: SentenceTransformer, preset: Preset) -> None:
    """A preset's EmbedFilter, as a module after MetaEOL (saved with the model)."""
    from metaeol_integrations.postprocessing import add_embed_filter

    if preset.embed_filter is not None:
        add_embed_filter(model, preset.embed_filter)


def _load_sentence_transformer(
    name: str, device: str | None, overrides: dict[str, Any], backbone_kwargs: dict[str, Any],
    sentence_transformer_kwargs: dict[str, Any],
) -> SentenceTransformer:
    # trust_remote_code=True only imports our own module class (checked above); it is not passed to the LLM.
    model = SentenceTransformer(name, trust_remote_code=True, device=device, **backbone_kwargs,
                                **sentence_transformer_kwargs)
    _apply_overrides(model, overrides)
    if model[0].quantize is not None and device is None:
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
        local_files_only=True,
    )
    card.register_model(model)
    model.model_card_data = card


def _check_dtype(model: SentenceTransformer) -> None:
    module = model[0]
    if isinstance(module, MetaEOL):
        check_dtype_on_device(module.auto_model.dtype, model.device)


# load() options whose module attribute has another name; the rest are set under their own name.
_ATTRIBUTE_OF_OPTION = {"templates": "template_set", "task_templates": "task_template_sets"}


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


def _apply_overrides(model: SentenceTransformer, overrides: dict[str, Any]) -> None:
    module = model[0]
    if not isinstance(module, MetaEOL):
        raise UnknownModelError(f"The first module of this folder is {type(module).__name__}, not MetaEOL.")
    apply_settings(module, overrides)


def apply_settings(module: MetaEOL, settings: Mapping[str, Any]) -> None:
    """Set ``load()`` keywords (``templates``, ``layer``, ``token_prepending``...) on a loaded module, in order;
    a ``label`` key (recipe files) is ignored."""
    for option, value in settings.items():
        if option != "label":
            setattr(module, _ATTRIBUTE_OF_OPTION.get(option, option), value)


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


def _hub_base(name_or_path: str, load_kwargs: Mapping[str, Any]) -> tuple[str, Preset | None] | None:
    """The hub id of the base LLM that ``name_or_path`` stands for, when it can be known without loading."""
    if name_or_path in PRESETS:
        preset = PRESETS[name_or_path]
        return (preset.base_model, preset) if isinstance(preset.base_model, str) else None
    if not is_hub_id(name_or_path):
        return None
    kwargs = load_kwargs.get("model_kwargs") or {}
    revision = load_kwargs.get("revision") or kwargs.get("revision")
    if _hub_modules_json(name_or_path, revision, load_kwargs.get("token"), load_kwargs.get("cache_folder")) is None:
        return name_or_path, None
    return None  # a shared MetaEOL model: loaded and saved again


def export(name_or_path: str, output_dir: str | os.PathLike, weights: str | None = None, **load_kwargs: Any) -> Path:
    """Write a SentenceTransformer folder that ``SentenceTransformer(output_dir, trust_remote_code=True)`` loads.

    ``weights``: ``"reference"`` (default when the base LLM is a hub id) writes no weights and names the base by
    hub id and revision; it is written without loading or fetching anything. ``"copy"`` (default for local folders
    and packaged GGUF bases) loads the model and writes its weights. A local base cannot be referenced.
    """
    from metaeol_integrations.core.module import check_weights_mode
    from metaeol_integrations.sharing.reference import write_reference_folder

    hub_base = _hub_base(str(name_or_path), load_kwargs)
    if weights is None:
        weights = "reference" if hub_base is not None else None
    if weights == "reference" and hub_base is not None:
        base, preset = hub_base
        model_kwargs = load_kwargs.get("model_kwargs") or {}
        options = {key: load_kwargs[key] for key in (
            "templates", "task_templates", "layer", "max_seq_length", "prefix_cache", "max_tokens_per_forward",
            "token_prepending", "contrastive", "quantize",
        ) if load_kwargs.get(key) is not None}
        if preset is not None:
            options = {**preset.settings(), **options}
        return write_reference_folder(
            output_dir, base, revision=load_kwargs.get("revision") or model_kwargs.get("revision"),
            measured=preset.measured if preset else None, **options,
        )
    local = Path(os.path.expanduser(str(name_or_path)))
    if weights == "reference" and (name_or_path in PRESETS or (local.exists() and not _is_sentence_transformer_folder(local))):
        # A packaged (GGUF) preset or a local LLM: fail before loading it; this raises with the fix.
        label = PRESETS[name_or_path].base_model_label if name_or_path in PRESETS else str(local)
        check_weights_mode("reference", label)
    return save(load(str(name_or_path), **load_kwargs), output_dir, weights=weights)
