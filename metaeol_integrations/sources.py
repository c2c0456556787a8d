"""What a model name is: answered once, here, for ``load``, ``export``, the evaluation encoders and the CLI.

A name is a preset, a saved MetaEOL SentenceTransformer folder, another SentenceTransformer folder, a shared MetaEOL
model on the hub (a repository with ``modules.json``), a base LLM on the hub, a local LLM folder, or a ``.gguf`` file.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaeol_integrations.core.module import MODULE_TYPE as METAEOL_MODULE_TYPE
from metaeol_integrations.errors import UnknownModelError
from metaeol_integrations.locations import is_hub_id
from metaeol_integrations.presets import DEFAULT_PRESET, PRESETS, Preset

PRESET = "preset"
METAEOL_FOLDER = "metaeol-folder"
SENTENCE_TRANSFORMER_FOLDER = "sentence-transformer-folder"
HUB_METAEOL = "hub-metaeol"
HUB_LLM = "hub-llm"
LLM_FOLDER = "llm-folder"
GGUF = "gguf"

# A saved folder may only name these module classes: loading passes trust_remote_code=True on the user's behalf to
# import our own class, and that must not let a folder import anything else.
_ALLOWED_MODULE_PREFIXES = ("sentence_transformers.", "metaeol_integrations.postprocessing.")


@dataclass(frozen=True)
class Source:
    """What ``name`` is (``kind``), where it is (``location``: a path or hub id) and its preset, if one."""

    kind: str
    name: str
    location: str
    preset: Preset | None = None
    module_types: tuple[str, ...] = ()  # a SentenceTransformer folder's modules.json types

    def refused_module_type(self) -> str | None:
        """The first module type ``metaeol_integrations.load`` will not import, if any."""
        for module_type in self.module_types:
            if module_type != METAEOL_MODULE_TYPE and not module_type.startswith(_ALLOWED_MODULE_PREFIXES):
                return module_type
        return None


def _module_types(modules_json: Path) -> tuple[str, ...]:
    with open(modules_json, encoding="utf-8") as handle:
        return tuple(str(module.get("type", "")) for module in json.load(handle))


def _folder_kind(module_types: tuple[str, ...]) -> str:
    return METAEOL_FOLDER if module_types[:1] == (METAEOL_MODULE_TYPE,) else SENTENCE_TRANSFORMER_FOLDER


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


def _unknown_name(name: str) -> UnknownModelError:
    """The error for a name that is none of the kinds, with the closest presets."""
    close = difflib.get_close_matches(name, list(PRESETS), n=3, cutoff=0.5)
    suggestion = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownModelError(
        f"{name!r} is not a preset, a model folder, a .gguf file or a hub id.{suggestion} "
        f"Fix: run `metaeol info` for the presets, or pass a path (default: {DEFAULT_PRESET!r})."
    )


def resolve_source(
    name: str, *, revision: str | None = None, token: bool | str | None = None, cache_folder: str | None = None,
) -> Source:
    """What ``name`` is; a hub id is looked up (its ``modules.json``, through the hub cache). Raises
    :class:`UnknownModelError` for anything else."""
    name = str(name)
    if name in PRESETS:
        return Source(PRESET, name, name, preset=PRESETS[name])
    path = Path(name).expanduser()
    if path.is_dir() and (path / "modules.json").is_file():
        types = _module_types(path / "modules.json")
        return Source(_folder_kind(types), name, str(path), module_types=types)
    if is_hub_id(name):
        modules_json = _hub_modules_json(name, revision, token, cache_folder)
        if modules_json is not None:
            types = _module_types(modules_json)
            kind = HUB_METAEOL if _folder_kind(types) == METAEOL_FOLDER else SENTENCE_TRANSFORMER_FOLDER
            return Source(kind, name, name, module_types=types)
        return Source(HUB_LLM, name, name)
    if path.is_dir():
        return Source(LLM_FOLDER, name, str(path))
    if path.suffix == ".gguf":
        return Source(GGUF, name, str(path))
    raise _unknown_name(name)
