"""The same app as a Ray Serve ingress: one model per replica, requests merged by ``@serve.batch``.

``metaeol serve --ray`` runs it; a Serve config file imports :func:`app_builder` (docs/serving.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from ray import serve

from metaeol_integrations.serving.app import create_app
from metaeol_integrations.serving.service import Embedded, EmbeddingService, Job
from metaeol_integrations.serving.settings import ServeSettings, api_key_from_environment, default_served_name


def _texts_in(jobs: Sequence[Job]) -> int:
    return sum(len(job.texts) for job in jobs)


@serve.deployment(ray_actor_options={"num_cpus": 1}, health_check_period_s=2, health_check_timeout_s=30)
@serve.ingress()
class MetaEOLDeployment:
    """One replica: loads the model once and serves the app; texts of concurrent requests share ``encode`` calls."""

    def __init__(self, model: str, load_kwargs: dict[str, Any], settings: dict[str, Any]) -> None:
        from metaeol_integrations.loading import load

        # A key in the replica's environment (a Serve config's runtime_env) counts as for `metaeol serve`.
        self.settings = ServeSettings(**{**settings, "api_key": settings.get("api_key") or api_key_from_environment()})
        # device None: sentence-transformers takes the replica's GPU when Ray gave it one.
        self.service = EmbeddingService(load(model, **load_kwargs), self.settings)
        self._run_batch.set_max_batch_size(self.settings.max_batch_texts)
        self._run_batch.set_batch_wait_timeout_s(self.settings.batch_wait_ms / 1000)

    def __serve_build_asgi_app__(self):
        # Serve cancels a request whose HTTP client disconnects, so the app does not watch for it itself.
        return create_app(self.service, self, watch_disconnects=False)

    async def embed(self, texts: Sequence[str], task: str) -> Embedded:
        """``texts`` in pieces of at most ``max_batch_texts`` (Serve refuses a larger item), each batched with other
        requests' pieces; with batching off, the request alone."""
        if not self.settings.batching:
            return (await asyncio.to_thread(self.service.run, [Job(tuple(texts), task)]))[0]
        size = self.settings.max_batch_texts
        pieces = [Job(tuple(texts[start:start + size]), task) for start in range(0, len(texts), size)]
        embedded = await asyncio.gather(*(self._run_batch(piece) for piece in pieces))
        return Embedded(np.concatenate([part.vectors for part in embedded]),
                        sum(part.prompt_tokens for part in embedded))

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005, batch_size_fn=_texts_in)
    async def _run_batch(self, jobs: list[Job]) -> list[Embedded]:
        return await asyncio.to_thread(self.service.run, jobs)


def deployment_app(model: str, load_kwargs: dict[str, Any], settings: ServeSettings, num_replicas: int = 1,
                   num_cpus: float = 1.0, num_gpus: float = 0.0) -> serve.Application:
    """The Serve application: ``num_replicas`` replicas of the model, each with its own CPUs/GPU."""
    options = {"num_cpus": num_cpus, **({"num_gpus": num_gpus} if num_gpus else {})}
    return MetaEOLDeployment.options(num_replicas=num_replicas, ray_actor_options=options).bind(
        model, load_kwargs, dataclasses.asdict(settings))


def app_builder(args: dict[str, Any]) -> serve.Application:
    """For a Serve config file (``import_path: metaeol_integrations.serving.ray_deployment:app_builder``): ``args``
    holds ``model``, optional ``load_kwargs`` (``metaeol_integrations.load`` keywords), ``settings``
    (:class:`ServeSettings` fields; ``served_model_name`` defaults to the model's name), ``num_replicas``,
    ``num_cpus`` and ``num_gpus`` per replica."""
    model = args["model"]
    settings = {"served_model_name": default_served_name(model), **args.get("settings", {})}
    return deployment_app(model, args.get("load_kwargs", {}), ServeSettings(**settings),
                          num_replicas=int(args.get("num_replicas", 1)), num_cpus=float(args.get("num_cpus", 1)),
                          num_gpus=float(args.get("num_gpus", 0)))
