"""``metaeol serve``: the OpenAI-compatible embeddings endpoint, on uvicorn or on Ray Serve."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from metaeol_integrations.cli.options import add_recipe_options, add_runtime_options, load_options
from metaeol_integrations.cli.usage import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_serve_command(commands: argparse._SubParsersAction, default_model: str) -> None:
    """Register ``metaeol serve``."""
    from metaeol_integrations.serving.settings import API_KEY_ENV, OPENAI_MAX_INPUTS

    serve = commands.add_parser(
        "serve", help="serve the model behind OpenAI's embeddings API (extra `serve`)",
        description="Serve a MetaEOL model at POST /v1/embeddings in OpenAI's format (plus GET /v1/models, GET "
        "/health and the API docs at /docs). The model id NAME embeds documents, NAME-query embeds queries with the "
        "model's query templates. Concurrent requests are merged into shared forward batches (docs/serving.md).",
    )
    serve.add_argument("--model", default=default_model, help=f"any name `metaeol encode` takes (default: {default_model})")
    serve.add_argument("--served-model-name", metavar="NAME",
                       help="model id clients send (default: the --model name, or a folder's/file's name)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="bind address (default 127.0.0.1; another address exposes the server: set a key)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--api-key", help=f"require 'Authorization: Bearer KEY' on every route but /health (default: "
                       f"the {API_KEY_ENV} environment variable, which keeps the key out of the process list)")
    serve.add_argument("--normalize", action="store_true",
                       help="L2-normalise the vectors (default: exactly as the model computes them)")
    limits = serve.add_argument_group("limits (a request over one gets a 4xx naming the fix)")
    limits.add_argument("--max-inputs", type=int, default=OPENAI_MAX_INPUTS,
                        help=f"texts per request (default {OPENAI_MAX_INPUTS}, OpenAI's limit)")
    limits.add_argument("--max-text-chars", type=int, default=100_000,
                        help="characters per text (default 100000; shorter texts are still truncated to the model's "
                        "window inside the prompt)")
    limits.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024,
                        help="request body size (default 8 MiB)")
    limits.add_argument("--max-queued-texts", type=int, default=16_384,
                        help="texts waiting for the model before requests get 429 (default 16384)")
    batching = serve.add_argument_group("batching")
    batching.add_argument("--max-batch-texts", type=int, default=64,
                          help="texts of concurrent requests merged into one encode call (default 64)")
    batching.add_argument("--batch-wait-ms", type=float, default=5.0,
                          help="how long the first request waits for others to join its batch (default 5)")
    batching.add_argument("--no-batching", dest="batching", action="store_false",
                          help="run every request as its own encode call")
    batching.add_argument("--batch-size", type=int, default=16,
                          help="texts per forward batch inside an encode call (default 16; each is K prompts)")
    add_recipe_options(serve)
    add_runtime_options(serve)
    ray = serve.add_argument_group("Ray Serve (extra `ray`): scale out, one model per replica")
    ray.add_argument("--ray", action="store_true", help="run the app as a Ray Serve deployment")
    ray.add_argument("--num-replicas", type=int, default=1, help="replicas, each with its own model (default 1)")
    ray.add_argument("--ray-address", help="cluster address (default: a local Ray instance, or RAY_ADDRESS)")
    ray.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs each replica reserves (default 1)")
    ray.add_argument("--gpus-per-replica", type=float,
                     help="GPUs each replica reserves (default: 1 when the cluster has GPUs, else 0)")
    serve.set_defaults(handler=cmd_serve)


def settings_from_args(args: argparse.Namespace) -> Any:
    """The command's :class:`~metaeol_integrations.serving.ServeSettings`."""
    from metaeol_integrations.serving.settings import ServeSettings, api_key_from_environment, default_served_name

    try:
        return ServeSettings(
            served_model_name=args.served_model_name or default_served_name(args.model),
            api_key=args.api_key or api_key_from_environment(), normalize=args.normalize,
            max_inputs=args.max_inputs, max_text_chars=args.max_text_chars, max_body_bytes=args.max_body_bytes,
            max_batch_texts=args.max_batch_texts, batch_wait_ms=args.batch_wait_ms, batching=args.batching,
            max_queued_texts=args.max_queued_texts, encode_batch_size=args.batch_size,
        )
    except ValueError as error:
        raise UsageError(f"{error} Fix: change that flag.") from error


def cmd_serve(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    try:
        from metaeol_integrations import serving
    except ImportError as error:
        raise UsageError(str(error)) from error
    settings = settings_from_args(args)
    if args.host not in LOOPBACK and settings.api_key is None:
        print(f"metaeol serve: warning: listening on {args.host} with no API key; anyone who can reach it can use "
              "it. Set METAEOL_API_KEY (or --api-key).", file=sys.stderr)
    if args.ray:
        return _serve_on_ray(args, settings, out)
    from metaeol_integrations.loading import load

    model = load(args.model, device=args.device, **load_options(args))
    out.write(f"serving {args.model} as {settings.served_model_name!r} (documents) and "
              f"{settings.query_model_name!r} (queries) on http://{args.host}:{args.port}/v1\n")
    out.flush()
    serving.run_server(serving.build_app(model, settings), host=args.host, port=args.port,
                       log_level="info" if args.verbose else "warning")
    return 0


def _serve_on_ray(args: argparse.Namespace, settings: Any, out: TextIO) -> int:
    try:
        import ray
        from ray import serve

        from metaeol_integrations.serving.ray_deployment import deployment_app
    except ImportError as error:
        raise UsageError(f"--ray needs Ray Serve ({error}). Fix: pip install \"metaeol-integrations[ray,serve]\".") from error
    ray.init(address=args.ray_address, ignore_reinit_error=True)
    gpus = args.gpus_per_replica
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    load_kwargs = {**load_options(args), "device": args.device}
    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(deployment_app(args.model, load_kwargs, settings, num_replicas=args.num_replicas,
                             num_cpus=args.cpus_per_replica, num_gpus=gpus), name="metaeol", route_prefix="/")
    out.write(f"serving {args.model} on Ray Serve ({args.num_replicas} replica(s)) as "
              f"{settings.served_model_name!r} / {settings.query_model_name!r} on http://{args.host}:{args.port}/v1; "
              "Ctrl-C stops it\n")
    out.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0
