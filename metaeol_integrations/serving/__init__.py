"""``metaeol serve``: MetaEOL behind OpenAI's embeddings API, on FastAPI + uvicorn, or on Ray Serve to scale out.

Needs the ``serve`` extra (``ray`` too for Ray Serve). See docs/serving.md. The names below load on first use, so
``serving.settings`` (used by the CLI's parser) imports without the extra.
"""

from __future__ import annotations

import importlib
from typing import Any

from metaeol_integrations._extras import missing_extra
from metaeol_integrations.serving.settings import ServeSettings

_LAZY = {
    "create_app": "metaeol_integrations.serving.app",
    "build_app": "metaeol_integrations.serving.server",
    "run_server": "metaeol_integrations.serving.server",
    "EmbeddingService": "metaeol_integrations.serving.service",
}

__all__ = ["ServeSettings", "EmbeddingService", "build_app", "create_app", "run_server"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise missing_extra("serve", "fastapi and uvicorn") from error
    return getattr(importlib.import_module(_LAZY[name]), name)
