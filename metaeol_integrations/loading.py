"""Build a ``SentenceTransformer`` around the MetaEOL module from a preset, a folder or a ``.gguf`` file."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sentence_transformers import SentenceTransformer

from metaeol_integrations.core.backbone import check_dtype_on_device
from metaeol_integrations.core.module import MetaEOL
from metaeol_integrations.core.templates import TemplateSpec
from metaeol_integrations.errors import UnknownModelError
from metaeol_integrations.presets import DEFAULT_PRESET, PRESETS

_MODULE_TYPE = f"{MetaEOL.__module__}.{MetaEOL.__name__}"
# A saved folder may only name these module classes: we pass trust_remote_code=True on the user's behalf to import
# our own class, and that must not let a folder import anything else.
_ALLOWED_MODULE_PREFIXES = ("sentence_transformers.",)



def _is_sentence_transformer_folder(path: Path) -> bool:
    return (path / "modules.json").is_file()


def _check_module_types(folder: Path) -> None:
    with open(folder / "modules.json", encoding="utf-8") as handle:
        modules = json.load(handle)
    for module in modules:
        module_type = module.get("type", "")
        if module_type != _MODULE_TYPE and not module_type.startswith(_ALLOWED_MODULE_PREFIXES):
            raise UnknownModelError(
                f"{folder} names the module class {module_type!r}, which metaeol_integrations.load does not import. "
                "Fix: load this folder with SentenceTransformer(path, trust_remote_code=True) if you trust its code."
            )


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
    model_kwargs: dict[str, Any] | None = None,
    processor_kwargs: dict[str, Any] | None = None,
    config_kwargs: dict[str, Any] | None = None,
    cache_folder: str | None = None,
    device: str | None = None,
    **sentence_transformer_kwargs: Any,
) -> SentenceTransformer:
    """Load a MetaEOL model as a ``SentenceTransformer``.

    ``name_or_path`` is a preset name (``metaeol info`` lists them), a saved MetaEOL SentenceTransformer folder,
    a Hugging Face model folder or hub id of a decoder-only LLM, or a ``.gguf`` file. ``templates``,
    ``task_templates`` (e.g. ``{"query": "prompteol"}`` for ``encode_query``), ``layer``, ``max_seq_length``,
    ``prefix_cache`` and ``max_tokens_per_forward`` override the preset's or folder's values; ``model_kwargs`` go to ``AutoModel`` (``dtype``,
    ``trust_remote_code``...). Other keywords (``prompts``, ``truncate_dim``, ``similarity_fn_name``...) go to
    ``SentenceTransformer``.
    """
    options = {
        "templates": templates, "task_templates": task_templates, "layer": layer, "max_seq_length": max_seq_length,
        "prefix_cache": prefix_cache, "max_tokens_per_forward": max_tokens_per_forward,
    }
    overrides = {key: value for key, value in options.items() if value is not None}
    backbone_kwargs = dict(
        model_kwargs=model_kwargs, processor_kwargs=processor_kwargs, config_kwargs=config_kwargs,
        cache_folder=cache_folder,
    )
    sentence_transformer_kwargs.setdefault("similarity_fn_name", "cosine")
    path = Path(os.path.expanduser(str(name_or_path)))

    if str(name_or_path) in PRESETS:
        preset = PRESETS[str(name_or_path)]
        settings = {"templates": preset.templates, "layer": preset.layer, **overrides}
        module = MetaEOL(preset.base_model_source(), base_model=preset.base_model_label, **settings, **backbone_kwargs)
    elif path.is_dir() and _is_sentence_transformer_folder(path):
        _check_module_types(path)
        model = SentenceTransformer(
            str(path), trust_remote_code=True, device=device, **backbone_kwargs, **sentence_transformer_kwargs
        )
        _apply_overrides(model, overrides)
        _check_dtype(model)
        return model
    elif path.is_dir() or path.suffix == ".gguf" or str(name_or_path).count("/") == 1:
        module = MetaEOL(str(path) if path.exists() else str(name_or_path), **overrides, **backbone_kwargs)
    else:
        raise _unknown(str(name_or_path))

    model = SentenceTransformer(modules=[module], device=device, **sentence_transformer_kwargs)
    _check_dtype(model)
    return model


def _check_dtype(model: SentenceTransformer) -> None:
    module = model[0]
    if isinstance(module, MetaEOL):
        check_dtype_on_device(module.auto_model.dtype, model.device)


# load() options whose module attribute has another name; the rest are set under their own name.
_ATTRIBUTE_OF_OPTION = {"templates": "template_set", "task_templates": "task_template_sets"}


def _apply_overrides(model: SentenceTransformer, overrides: dict[str, Any]) -> None:
    module = model[0]
    if not isinstance(module, MetaEOL):
        raise UnknownModelError(f"The first module of this folder is {type(module).__name__}, not MetaEOL.")
    for option, value in overrides.items():
        setattr(module, _ATTRIBUTE_OF_OPTION.get(option, option), value)


def export(name_or_path: str, output_dir: str, **load_kwargs: Any) -> Path:
    """Write a SentenceTransformer folder that ``SentenceTransformer(output_dir, trust_remote_code=True)`` loads."""
    model = load(name_or_path, **load_kwargs)
    model.save(str(output_dir))
    return Path(output_dir)
