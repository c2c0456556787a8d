"""Where things are: hub ids, files inside installed packages, and this package's cache folder.

No imports from the rest of the package: every layer, ``core`` included, may use these.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

CACHE_ENV_VAR = "METAEOL_CACHE"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_hub_id(source: str) -> bool:
    """Whether ``source`` names a Hugging Face hub repository (``org/name``) rather than a local path or file."""
    text = str(source)
    return bool(_HUB_ID.match(text)) and not text.endswith(".gguf") and not Path(text).expanduser().exists()


def default_cache_folder() -> Path:
    """``$METAEOL_CACHE``, else ``$XDG_CACHE_HOME/metaeol-integrations``, else ``~/.cache/metaeol-integrations``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "metaeol-integrations"


def file_in_package(package: str, relative_path: str) -> str | None:
    """Absolute path of ``relative_path`` inside an installed package, found without importing it; None if absent."""
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(location, relative_path)
        if os.path.isfile(candidate):
            return candidate
    return None
