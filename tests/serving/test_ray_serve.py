"""The server as a Ray Serve ingress on a local Ray instance (loopback only): two replicas answer with the local
vectors, and one killed mid-load is replaced while the other keeps answering."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="needs the ray extra: pip install \"metaeol-integrations[ray,serve]\"")
serve = pytest.importorskip("ray.serve")

import metaeol_integrations  # noqa: E402
from metaeol_integrations.serving import ServeSettings  # noqa: E402
from metaeol_integrations.serving.ray_deployment import deployment_app  # noqa: E402
from tests.serving.test_command import free_port  # noqa: E402

# Ray's processes talk over loopback TCP.
pytestmark = [pytest.mark.enable_socket, pytest.mark.slow]

TEXTS = [f"Request {index} asks about {'cats' if index % 2 else 'the stock market'}." for index in range(12)]
DEPLOYMENT = "MetaEOLDeployment"


def running_replicas() -> int:
    deployment = serve.status().applications["metaeol"].deployments[DEPLOYMENT]
    return sum(count for state, count in deployment.replica_states.items() if str(state).endswith("RUNNING"))


def wait_for_replicas(count: int, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while running_replicas() != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{running_replicas()} replicas running after {timeout_s} s, expected {count}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def ray_server(tiny_model_dir):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    settings = ServeSettings("tiny", batch_wait_ms=20)
    load_kwargs = {"device": "cpu", "task_templates": {"query": "prompteol"}}
    serve.run(deployment_app(str(tiny_model_dir), load_kwargs, settings, num_replicas=2, num_cpus=0.5),
              name="metaeol", route_prefix="/")
    wait_for_replicas(2)
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def local(tiny_model_dir):
    return metaeol_integrations.load(str(tiny_model_dir), device="cpu", task_templates={"query": "prompteol"})


def test_two_replicas_answer_with_local_vectors(ray_server, local):
    documents = httpx.post(f"{ray_server}/v1/embeddings", json={"model": "tiny", "input": TEXTS}, timeout=60)
    queries = httpx.post(f"{ray_server}/v1/embeddings", json={"model": "tiny-query", "input": TEXTS[:3]}, timeout=60)
    bad = httpx.post(f"{ray_server}/v1/embeddings", json={"model": "tiny", "input": []}, timeout=60)
    for response, expected in ((documents, local.encode_document(TEXTS)), (queries, local.encode_query(TEXTS[:3]))):
        got = np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float32)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert bad.status_code == 400 and "Fix:" in bad.json()["error"]["message"]
    assert running_replicas() == 2


def test_a_killed_replica_is_replaced_while_the_other_keeps_answering(ray_server, local):
    expected = local.encode_document(TEXTS)
    results: list[tuple[float, int, int]] = []  # (time, status, text index); status 0: transport error
    stop = threading.Event()

    def client(offset: int) -> None:
        index = offset
        with httpx.Client(timeout=30) as http:
            for _ in range(150):  # bounded traffic
                if stop.is_set():
                    return
                index = (index + 1) % len(TEXTS)
                try:
                    response = http.post(f"{ray_server}/v1/embeddings", json={"model": "tiny", "input": TEXTS[index]})
                    status = response.status_code
                    if status == 200:
                        got = np.array(response.json()["data"][0]["embedding"], dtype=np.float32)
                        np.testing.assert_allclose(got, expected[index], atol=1e-5, rtol=0)
                except httpx.TransportError:
                    status = 0
                results.append((time.monotonic(), status, index))

    clients = [threading.Thread(target=client, args=(offset,)) for offset in range(3)]
    for thread in clients:
        thread.start()
    time.sleep(2)
    replicas = [actor for actor in ray.util.list_named_actors(all_namespaces=True)
                if "SERVE_REPLICA" in actor["name"] and DEPLOYMENT in actor["name"]]
    assert len(replicas) == 2
    killed_at = time.monotonic()
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
    time.sleep(4)
    stop.set()
    for thread in clients:
        thread.join(60)
        assert not thread.is_alive(), "a client hung"
    after = [status for at, status, _ in results if at > killed_at]
    assert after.count(200) >= 3, f"statuses after the kill: {after}"
    assert all(status == 200 or status == 0 or status >= 500 for status in after)
    wait_for_replicas(2)
    response = httpx.post(f"{ray_server}/v1/embeddings", json={"model": "tiny", "input": TEXTS}, timeout=60)
    assert response.status_code == 200
