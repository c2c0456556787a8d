"""Weightless ("reference") MetaEOL folders, written without loading the base LLM.

Such a folder is a complete SentenceTransformer folder (``modules.json``, ``config_sentence_transformers.json``,
``metaeol_config.json``, ``README.md``) whose MetaEOL config names the base model by hub id (and revision); loading
it fetches the base through the normal ``transformers`` / ``huggingface_hub`` cache. It is the same folder that
``MetaEOL.save`` writes with ``weights="reference"``, so a 7B model can be published offline in kilobytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import sentence_transformers
import torch
import transformers

from metaeol_integrations.core.module import MODULE_TYPE, MetaEOL
from metaeol_integrations.core.recipe import Recipe
from metaeol_integrations.sharing.model_card import CardFacts, render_model_card
from metaeol_integrations.core.persistence import check_weights_mode, declare_requirement


def write_reference_folder(
    output_dir: str | os.PathLike,
    base_model: str,
    recipe: Recipe | None = None,
    *,
    revision: str | None = None,
    similarity_fn_name: str = "cosine",
    measured: str | None = None,
    card_base_model: str | None = None,
    **options: Any,
) -> Path:
    """Write a weightless MetaEOL SentenceTransformer folder for the hub model ``base_model``; fetches nothing.

    The recipe's layers are checked against the base model only when the folder is loaded (its depth is not known
    offline). Recipe options given as keywords (``templates="prompteol"``...) are set on top of ``recipe``.
    """
    check_weights_mode("reference", base_model)
    recipe = (recipe or Recipe()).with_overrides(options)
    config = {**recipe.to_config(), "base_model": base_model, "base_model_revision": revision, "weights": "reference"}

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
    declare_requirement(folder)
    _write_json(folder / "modules.json", [{"idx": 0, "name": "0", "path": "", "type": MODULE_TYPE}], indent=2)
    _write_json(folder / MetaEOL.config_file_name, config, indent=4)
    facts = CardFacts(
        base_model=base_model, template_set=recipe.templates, layer=recipe.effective_layer,
        max_seq_length=recipe.max_seq_length, weights="reference", base_model_revision=revision,
        task_templates=dict(recipe.task_templates), measured=measured, card_base_model=card_base_model,
    )
    (folder / "README.md").write_text(render_model_card(facts), encoding="utf-8")
    return folder


def _write_json(path: Path, data: object, **options) -> None:
    path.write_text(json.dumps(data, **options), encoding="utf-8")
