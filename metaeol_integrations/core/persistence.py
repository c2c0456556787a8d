"""How a MetaEOL model folder stores its LLM: the weights modes, the package requirement, weightless loading.

The module's ``save``/``load`` call these; nothing here imports the module, so ``core`` may use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from metaeol_integrations._version import __version__
from metaeol_integrations.errors import WeightsModeError
from metaeol_integrations.locations import is_hub_id

DISTRIBUTION_NAME = "metaeol-integrations"
WEIGHTS_MODES = ("reference", "copy")


def check_weights_mode(weights: str, base_model: str) -> None:
    """Raise :class:`WeightsModeError` unless ``weights`` is a mode that can store a model based on ``base_model``."""
    if weights not in WEIGHTS_MODES:
        raise WeightsModeError(f"weights must be 'reference' or 'copy', not {weights!r}.")
    if weights == "reference" and not is_hub_id(base_model):
        raise WeightsModeError(
            f"The base model {base_model!r} is not a hub id (org/name), so a weightless folder cannot point at it. "
            "Fix: save with weights='copy' (CLI: --weights copy), which writes the weights into the folder."
        )


def default_weights_mode(source: str) -> str:
    """``"reference"`` for an LLM loaded by hub id (the folder names it), ``"copy"`` for anything local."""
    return "reference" if is_hub_id(source) else "copy"


def declare_requirement(output_path: str | os.PathLike) -> None:
    """Name this package in the folder's ``config_sentence_transformers.json`` ``requirements``.

    sentence-transformers writes that file before the modules, so loading the folder without the package fails
    with an ImportError that names the pip command, before any class lookup.
    """
    path = os.path.join(output_path, "config_sentence_transformers.json")
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    config.setdefault("requirements", {})[DISTRIBUTION_NAME] = {
        "specifier": f">={__version__}",
        "reason": "The MetaEOL module of this model comes from the metaeol-integrations package.",
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2, sort_keys=True)


def reference_source(
    config: Mapping[str, Any], model_kwargs: Mapping[str, Any] | None, token: bool | str | None,
    local_files_only: bool,
) -> tuple[str, dict[str, Any]]:
    """Where a weightless folder's LLM loads from: its recorded hub id, at the recorded revision.

    The folder's own revision and token apply to the folder; the base's revision is the one recorded at export.
    """
    source = str(config.get("base_model", ""))
    check_weights_mode("reference", source)
    kwargs = dict(model_kwargs or {})
    if config.get("base_model_revision"):
        kwargs.setdefault("revision", config["base_model_revision"])
    for key, value in (("token", token), ("local_files_only", local_files_only)):
        if value:
            kwargs.setdefault(key, value)
    return source, kwargs
