"""The single-process server: a loaded model, the micro-batcher and the app, run by uvicorn."""

from __future__ import annotations

from fastapi import FastAPI
from sentence_transformers import SentenceTransformer

from metaeol_integrations.serving.app import create_app
from metaeol_integrations.serving.micro_batcher import MicroBatcher
from metaeol_integrations.serving.service import EmbeddingService
from metaeol_integrations.serving.settings import ServeSettings


def build_app(model: SentenceTransformer, settings: ServeSettings) -> FastAPI:
    """The OpenAI-compatible app around ``model``, merging concurrent requests into shared ``encode`` calls.

    ``app.state.service`` and ``app.state.batcher`` expose the counters (``encode_calls``, ``batches_run``,
    ``queued_texts``).
    """
    service = EmbeddingService(model, settings)
    batcher = MicroBatcher(service.run, settings)
    app = create_app(service, batcher, on_shutdown=batcher.close)
    app.state.service = service
    app.state.batcher = batcher
    return app


def run_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn until interrupted (one process, one event loop: the model lives here once)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)
