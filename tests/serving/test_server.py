"""`metaeol serve`'s app over real HTTP (uvicorn on 127.0.0.1): OpenAI's format, local vectors, cross-request
batching, every bad input answered with a 4xx, keys, and a client that leaves mid-request."""

from __future__ import annotations

import asyncio
import base64
import threading
import time

import httpx
import numpy as np
import pytest

from metaeol_integrations.serving import EmbeddingService, ServeSettings, build_app, create_app
from metaeol_integrations.serving.micro_batcher import MicroBatcher
from tests.serving.conftest import KEY
from tests.serving.live import live_server

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

TEXTS = ["A man is playing a guitar.", "Why is the sky blue?", 'She said "hi"\nand left.', "Zebras."]
AUTH = {"Authorization": f"Bearer {KEY}"}


def embed(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json=body, headers=AUTH, timeout=30)


def vectors_of(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [item["index"] for item in data] == list(range(len(data)))
    return np.array([item["embedding"] for item in data], dtype=np.float32)


def close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)


def test_documents_and_queries_equal_local_vectors(server, tiny_query_model):
    url, _ = server
    documents = vectors_of(embed(url, model="tiny", input=TEXTS))
    queries = vectors_of(embed(url, model="tiny-query", input=TEXTS))
    close(documents, tiny_query_model.encode_document(TEXTS, convert_to_numpy=True))
    close(documents, tiny_query_model.encode(TEXTS, convert_to_numpy=True))
    close(queries, tiny_query_model.encode_query(TEXTS, convert_to_numpy=True))
    assert np.abs(documents - queries).max() > 1e-3  # the query id really uses the query templates


def test_one_string_base64_dimensions_and_usage(server, tiny_query_model):
    url, _ = server
    single = embed(url, model="tiny", input=TEXTS[0])
    close(vectors_of(single), tiny_query_model.encode([TEXTS[0]], convert_to_numpy=True))
    packed = embed(url, model="tiny", input=TEXTS, encoding_format="base64")
    decoded = np.stack([np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
                        for item in packed.json()["data"]])
    close(decoded, tiny_query_model.encode(TEXTS, convert_to_numpy=True))
    short = vectors_of(embed(url, model="tiny", input=TEXTS, dimensions=16))
    close(short, tiny_query_model.encode(TEXTS, truncate_dim=16, convert_to_numpy=True))
    body = single.json()
    expected_tokens = len(tiny_query_model.tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"])
    assert body["usage"] == {"prompt_tokens": expected_tokens, "total_tokens": expected_tokens}
    assert body["model"] == "tiny" and body["object"] == "list"


def test_normalising_server_matches_encode_normalize(tiny_query_model):
    app = build_app(tiny_query_model, ServeSettings("tiny", normalize=True))
    with live_server(app) as url:
        full = vectors_of(httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": TEXTS}))
        short = vectors_of(httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": TEXTS, "dimensions": 8}))
    close(full, tiny_query_model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True))
    close(short, tiny_query_model.encode(TEXTS, normalize_embeddings=True, truncate_dim=8, convert_to_numpy=True))


def test_models_health_and_openapi(server):
    url, _ = server
    assert httpx.get(f"{url}/health").json()["status"] == "ok"  # open without a key
    models = httpx.get(f"{url}/v1/models", headers=AUTH).json()
    assert [model["id"] for model in models["data"]] == ["tiny", "tiny-query"]
    assert httpx.get(f"{url}/v1/models/tiny-query", headers=AUTH).json()["id"] == "tiny-query"
    assert "/v1/embeddings" in httpx.get(f"{url}/openapi.json").json()["paths"]


async def test_concurrent_requests_share_encode_calls(server, tiny_query_model):
    url, app = server
    texts = [f"sentence number {index} about topic {index % 3}" for index in range(16)]
    calls_before = app.state.service.encode_calls
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as client:
        responses = await asyncio.gather(*(client.post("/v1/embeddings", json={"model": "tiny", "input": text})
                                           for text in texts))
    calls = app.state.service.encode_calls - calls_before
    assert calls < len(texts), f"{len(texts)} requests took {calls} encode calls"
    close(np.concatenate([vectors_of(response) for response in responses]),
          tiny_query_model.encode(texts, convert_to_numpy=True))


async def test_mixed_tasks_in_one_batch_each_get_their_templates(server, tiny_query_model):
    url, _ = server
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as client:
        responses = await asyncio.gather(*(client.post("/v1/embeddings", json={"model": model, "input": text})
                                           for text in TEXTS for model in ("tiny", "tiny-query")))
    got = [vectors_of(response)[0] for response in responses]
    documents = tiny_query_model.encode_document(TEXTS, convert_to_numpy=True)
    queries = tiny_query_model.encode_query(TEXTS, convert_to_numpy=True)
    close(np.stack(got[0::2]), documents)
    close(np.stack(got[1::2]), queries)


async def test_batching_off_runs_each_request_alone(tiny_query_model):
    app = build_app(tiny_query_model, ServeSettings("tiny", batching=False))
    with live_server(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            responses = await asyncio.gather(*(client.post("/v1/embeddings", json={"model": "tiny", "input": text})
                                               for text in TEXTS))
    assert app.state.service.encode_calls == len(TEXTS)
    close(np.concatenate([vectors_of(response) for response in responses]),
          tiny_query_model.encode(TEXTS, convert_to_numpy=True))


BAD_REQUESTS = {
    "not JSON": (dict(content=b"{not json", headers={"content-type": "application/json"}), 400, None),
    "a JSON list": (dict(json=["a", "b"]), 400, None),
    "input missing": (dict(json={"model": "tiny"}), 400, "input"),
    "input a number": (dict(json={"model": "tiny", "input": 5}), 400, "input"),
    "input with a null": (dict(json={"model": "tiny", "input": ["a", None]}), 400, "input"),
    "token ids": (dict(json={"model": "tiny", "input": [[1, 2, 3]]}), 400, "input"),
    "empty list": (dict(json={"model": "tiny", "input": []}), 400, "input"),
    "too many inputs": (dict(json={"model": "tiny", "input": ["x"] * 9}), 400, "input"),
    "text over the limit": (dict(json={"model": "tiny", "input": ["x" * 2001]}), 400, "input"),
    "unknown model": (dict(json={"model": "gpt-4", "input": "a"}), 404, "model"),
    "model missing": (dict(json={"input": "a"}), 400, "model"),
    "bad encoding_format": (dict(json={"model": "tiny", "input": "a", "encoding_format": "int8"}), 400,
                            "encoding_format"),
    "dimensions 0": (dict(json={"model": "tiny", "input": "a", "dimensions": 0}), 400, "dimensions"),
    "dimensions over the width": (dict(json={"model": "tiny", "input": "a", "dimensions": 65}), 400, "dimensions"),
    "body over the limit": (dict(json={"model": "tiny", "input": ["y" * 1500] * 50}), 413, None),
    "chunked body over the limit": (dict(content=iter([b'{"model": "tiny", "input": "', b"z" * 70_000, b'"}']),
                                         headers={"content-type": "application/json"}), 413, None),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_a_4xx_in_openai_shape_and_the_server_keeps_answering(server, tiny_query_model, case):
    url, _ = server
    request, status, param = BAD_REQUESTS[case]
    request = dict(request)
    headers = {**AUTH, **request.pop("headers", {})}
    response = httpx.post(f"{url}/v1/embeddings", headers=headers, timeout=30, **request)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert "Fix:" in error["message"] and "Traceback" not in response.text
    assert error["param"] == param and error["type"] == "invalid_request_error"
    close(vectors_of(embed(url, model="tiny", input=TEXTS[:1])), tiny_query_model.encode(TEXTS[:1]))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY},
                                     {"Authorization": f"Basic {KEY}"}], ids=["missing", "wrong", "no scheme", "basic"])
def test_missing_or_wrong_key_is_401(server, headers):
    url, _ = server
    for response in (httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": "a"}, headers=headers),
                     httpx.get(f"{url}/v1/models", headers=headers)):
        assert response.status_code == 401
        assert "Fix:" in response.json()["error"]["message"]
    assert httpx.get(f"{url}/health").status_code == 200


def test_unknown_route_and_method_are_4xx_in_openai_shape(server):
    url, _ = server
    assert httpx.get(f"{url}/v1/nothing", headers=AUTH).json()["error"]["code"] == "http_404"
    response = httpx.get(f"{url}/v1/embeddings", headers=AUTH)
    assert response.status_code == 405 and "Fix:" in response.json()["error"]["message"]


class GatedRun:
    """``EmbeddingService.run`` that holds its first call until released, recording every call's texts."""

    def __init__(self, service: EmbeddingService) -> None:
        self.service = service
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[list[str]] = []

    def __call__(self, jobs):
        self.calls.append([text for job in jobs for text in job.texts])
        self.started.set()
        self.release.wait(30)
        return self.service.run(jobs)


def test_a_client_that_leaves_frees_its_place_and_is_never_computed(tiny_query_model):
    settings = ServeSettings("tiny", batch_wait_ms=0, max_queued_texts=2048)
    service = EmbeddingService(tiny_query_model, settings)
    gated = GatedRun(service)
    batcher = MicroBatcher(gated, settings)
    app = create_app(service, batcher, on_shutdown=batcher.close)
    with live_server(app) as url:
        first = threading.Thread(target=lambda: httpx.post(f"{url}/v1/embeddings",
                                                           json={"model": "tiny", "input": "first"}, timeout=30))
        first.start()
        assert gated.started.wait(10)
        with pytest.raises(httpx.ReadTimeout):  # this client gives up while its request waits in the queue
            httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": ["left", "early"]}, timeout=0.5)
        deadline = time.monotonic() + 10
        while batcher.queued_texts and time.monotonic() < deadline:
            time.sleep(0.02)
        assert batcher.queued_texts == 0
        gated.release.set()
        first.join(30)
        after = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": "after"}, timeout=30)
    assert after.status_code == 200
    assert ["left", "early"] not in gated.calls and ["first"] in gated.calls


def test_a_failing_model_is_a_500_in_openai_shape_and_the_server_recovers(tiny_query_model):
    settings = ServeSettings("tiny")
    service = EmbeddingService(tiny_query_model, settings)
    failures = iter([RuntimeError("boom")])

    def flaky(jobs):
        error = next(failures, None)
        if error is not None:
            raise error
        return service.run(jobs)

    batcher = MicroBatcher(flaky, settings)
    with live_server(create_app(service, batcher, on_shutdown=batcher.close)) as url:
        failed = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": "a"}, timeout=30)
        recovered = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": "a"}, timeout=30)
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "server_error"
    assert "boom" not in failed.text and "Traceback" not in failed.text
    assert recovered.status_code == 200


def test_a_full_queue_is_429_with_retry_after(tiny_query_model):
    settings = ServeSettings("tiny", batch_wait_ms=0, max_inputs=2, max_queued_texts=2)
    service = EmbeddingService(tiny_query_model, settings)
    gated = GatedRun(service)
    batcher = MicroBatcher(gated, settings)
    with live_server(create_app(service, batcher, on_shutdown=batcher.close)) as url:
        running = threading.Thread(target=lambda: httpx.post(f"{url}/v1/embeddings",
                                                             json={"model": "tiny", "input": "a"}, timeout=30))
        running.start()
        assert gated.started.wait(10)
        queued = threading.Thread(target=lambda: httpx.post(f"{url}/v1/embeddings",
                                                            json={"model": "tiny", "input": ["b", "c"]}, timeout=30))
        queued.start()
        deadline = time.monotonic() + 10
        while batcher.queued_texts < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": "d"}, timeout=30)
        gated.release.set()
        running.join(30)
        queued.join(30)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "Fix:" in refused.json()["error"]["message"]


def test_settings_refuse_impossible_limits():
    with pytest.raises(ValueError, match="max_queued_texts"):
        ServeSettings("m", max_inputs=10, max_queued_texts=5)
    with pytest.raises(ValueError, match="-query"):
        ServeSettings("m-query")
    with pytest.raises(ValueError, match="at least 1"):
        ServeSettings("m", max_batch_texts=0)
