"""Fixtures of the server tests: the tiny model with distinct query templates, and a live server around it."""

from __future__ import annotations

import pytest

import metaeol_integrations
from metaeol_integrations.serving import ServeSettings, build_app
from tests.serving.live import live_server

KEY = "test-key-123"


@pytest.fixture(scope="module")
def tiny_query_model(tiny_model_dir):
    """The tiny model with another template set for queries, so the document and query ids differ visibly."""
    return metaeol_integrations.load(str(tiny_model_dir), task_templates={"query": "prompteol"}, device="cpu")


@pytest.fixture(scope="module")
def server(tiny_query_model):
    """A live server (key required, small limits so every refusal is cheap to trigger); yields (base URL, app)."""
    settings = ServeSettings("tiny", api_key=KEY, max_inputs=8, max_text_chars=2000, max_body_bytes=64 * 1024,
                             max_batch_texts=64, batch_wait_ms=50, max_queued_texts=64)
    app = build_app(tiny_query_model, settings)
    with live_server(app) as url:
        yield url, app
