"""`metaeol serve` as a user starts it: a subprocess on a free loopback port, answering with the local vectors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

import metaeol_integrations
from metaeol_integrations.cli.main import build_parser
from metaeol_integrations.cli.serve import settings_from_args

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"metaeol serve exited: {process.stderr.read().decode()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("metaeol serve did not become healthy")


def test_flags_become_settings(tiny_model_dir):
    args = build_parser().parse_args(["serve", "--model", f"{tiny_model_dir}/", "--max-inputs", "4",
                                      "--max-queued-texts", "8", "--no-batching", "--normalize"])
    settings = settings_from_args(args)
    assert settings.served_model_name == tiny_model_dir.name and settings.query_model_name.endswith("-query")
    assert (settings.max_inputs, settings.batching, settings.normalize) == (4, False, True)


@pytest.mark.slow
def test_metaeol_serve_answers_with_local_vectors_and_needs_its_key(tiny_model_dir):
    port = free_port()
    environment = {**os.environ, "METAEOL_API_KEY": "k-env"}
    command = [sys.executable, "-m", "metaeol_integrations.cli.main", "serve", "--model", str(tiny_model_dir),
               "--served-model-name", "tiny", "--port", str(port), "--query-templates", "prompteol", "--device", "cpu"]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        texts = ["A man is playing a guitar.", "Why is the sky blue?"]
        documents = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": texts},
                               headers={"Authorization": "Bearer k-env"}, timeout=30)
        queries = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny-query", "input": texts},
                             headers={"Authorization": "Bearer k-env"}, timeout=30)
        refused = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": texts}, timeout=30)
    finally:
        process.terminate()
        process.wait(30)
    local = metaeol_integrations.load(str(tiny_model_dir), device="cpu", task_templates={"query": "prompteol"})
    for response, expected in ((documents, local.encode_document(texts)), (queries, local.encode_query(texts))):
        got = np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float32)
        # Relative to each vector's norm, as tests/test_recipe_vectors.py: a separate server process sums float32 in
        # another order now and then (measured up to 2.1e-5 absolute on vectors of norm 5.2; cause not found).
        error = np.abs(got - expected).max(axis=1) / np.linalg.norm(expected, axis=1)
        assert got.shape == expected.shape and error.max() <= 1e-5, error
    assert refused.status_code == 401


def test_serve_config_example_builds_its_application():
    yaml = pytest.importorskip("yaml")
    serve = pytest.importorskip("ray.serve")
    import importlib
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "serve_config.yaml").read_text())
    application = config["applications"][0]
    module_name, function_name = application["import_path"].split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    assert isinstance(builder(application["args"]), serve.Application)  # builds ServeSettings: field names checked
    with pytest.raises(TypeError):
        builder({**application["args"], "settings": {"max_batch_text": 64}})
