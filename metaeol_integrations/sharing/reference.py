"""Weightless ("reference") MetaEOL folders, written without loading the base LLM.

Such a folder is a complete SentenceTransformer folder (``modules.json``, ``config_sentence_transformers.json``,
``metaeol_config.json``, ``README.md``) whose MetaEOL config names the base model by hub id (and revision); loading
it fetches the base through the normal ``transformers`` / ``huggingface_hub`` cache. It is the same folder that
``MetaEOL.save`` writes with ``weights="reference"``, so a 7B model can be published offline in kilobytes.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import sentence_transformers
import torch
import transformers

from metaeol_integrations.core.contrastive import ContrastivePrompting
from metaeol_integrations.core.module import MetaEOL, check_weights_mode
from metaeol_integrations.core.quantization import check_quantize_mode
from metaeol_integrations.core.token_prepending import TokenPrepending
from metaeol_integrations.core.templates import TemplateSet, TemplateSpec, effective_layer
from metaeol_integrations.sharing.model_card import CardFacts, render_model_card

_MODULE_TYPE = f"{MetaEOL.__module__}.{MetaEOL.__name__}"


def _default(option: str):
    """MetaEOL's own default for a constructor option (one source of truth for both ways of writing a folder)."""
    return inspect.signature(MetaEOL.__init__).parameters[option].default


def write_reference_folder(
    output_dir: str | os.PathLike,
    base_model: str,
    *,
    revision: str | None = None,
    templates: TemplateSpec = "metaeol",
    task_templates: Mapping[str, TemplateSpec] | None = None,
    layer: int | Sequence[int] | None = None,
    max_seq_length: int | None = None,
    prefix_cache: bool | None = None,
    max_tokens_per_forward: int | None = None,
    token_prepending: bool | Sequence[int] | None = None,
    contrastive: bool | Mapping | None = None,
    quantize: str | None = None,
    chunk_tokens: int | None = None,
    similarity_fn_name: str = "cosine",
    measured: str | None = None,
    card_base_model: str | None = None,
) -> Path:
    """Write a weightless MetaEOL SentenceTransformer folder for the hub model ``base_model``; fetches nothing.

    The layer is checked against the base model only when the folder is loaded (its depth is not known offline).
    """
    check_weights_mode("reference", base_model)
    check_quantize_mode(quantize)
    template_set = TemplateSet.coerce(templates)
    task_sets = {task: TemplateSet.coerce(spec) for task, spec in (task_templates or {}).items()}
    if not (layer is None or isinstance(layer, int)
            or (isinstance(layer, Sequence) and layer and all(isinstance(x, int) for x in layer))):
        raise TypeError(f"layer must be None, an int or a list of ints, not {layer!r}.")
    settings = {
        "max_seq_length": max_seq_length or _default("max_seq_length"),
        "prefix_cache": _default("prefix_cache") if prefix_cache is None else bool(prefix_cache),
        "max_tokens_per_forward": max_tokens_per_forward or _default("max_tokens_per_forward"),
    }
    config = {
        "templates": template_set.to_dict(),
        "task_templates": {task: ts.to_dict() for task, ts in task_sets.items()},
        "layer": layer if layer is None or isinstance(layer, int) else list(layer),
        "max_seq_length": settings["max_seq_length"],
        "base_model": base_model,
        "base_model_revision": revision,
        "weights": "reference",
        "prefix_cache": settings["prefix_cache"],
        "max_tokens_per_forward": settings["max_tokens_per_forward"],
        # Validated and written as the module writes them (None when off).
        "token_prepending": None if (tp := TokenPrepending.coerce(token_prepending)) is None else tp.to_config(),
        "contrastive": None if (cp := ContrastivePrompting.coerce(contrastive)) is None else cp.to_config(),
        "quantize": quantize,
        "chunk_tokens": chunk_tokens,
    }

    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    model_config = {
        "model_type": "SentenceTransformer",
        "__version__": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "pytorch": torch.__version__,
        },
        "prompts": {"query": "", "document": ""},
        "default_prompt_name": None,
        "similarity_fn_name": similarity_fn_name,
    }
    _write_json(folder / "config_sentence_transformers.json", model_config, indent=2, sort_keys=True)
    MetaEOL._declare_requirement(str(folder))
    _write_json(folder / "modules.json", [{"idx": 0, "name": "0", "path": "", "type": _MODULE_TYPE}], indent=2)
    _write_json(folder / MetaEOL.config_file_name, config, indent=4)
    facts = CardFacts(
        base_model=base_model, template_set=template_set, layer=effective_layer(template_set, config["layer"]),
        max_seq_length=settings["max_seq_length"], weights="reference", base_model_revision=revision,
        task_templates=task_sets, measured=measured, card_base_model=card_base_model,
    )
    (folder / "README.md").write_text(render_model_card(facts), encoding="utf-8")
    return folder


def _write_json(path: Path, data: object, **options) -> None:
    path.write_text(json.dumps(data, **options), encoding="utf-8")
