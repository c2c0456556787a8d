"""The FastAPI app: OpenAI's ``/v1/embeddings`` and ``/v1/models``, ``/health``, the key check, the limits and
OpenAI-shaped errors. The same app runs under uvicorn (``metaeol serve``) and as the Ray Serve ingress."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metaeol_integrations._version import __version__
from metaeol_integrations.serving.protocol import (
    TEXT_INPUT_FIX,
    APIError,
    EmbeddingRequest,
    embeddings_body,
    error_body,
    model_card,
)
from metaeol_integrations.serving.service import Embedded, EmbeddingService

logger = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499  # nginx's status for "client went away": nobody reads it, logs do

_FIELD_FIXES = {
    "input": TEXT_INPUT_FIX,
    "model": 'send "model" as one of the ids that GET /v1/models lists',
    "encoding_format": 'send "float" or "base64", or leave it out',
    "dimensions": "send a positive integer no larger than the model's dimension, or leave it out",
}
_BODY_FIX = 'send a JSON object such as {"model": "<id from GET /v1/models>", "input": ["a text", "another"]}'


class EmbeddingBackend(Protocol):
    """Where the app's texts are embedded: the local :class:`~metaeol_integrations.serving.micro_batcher.MicroBatcher`
    or a Ray Serve replica's ``@serve.batch`` method."""

    async def embed(self, texts: Sequence[str], task: str) -> Embedded: ...


def create_app(service: EmbeddingService, backend: EmbeddingBackend, *, watch_disconnects: bool = True,
               on_shutdown: Callable[[], Awaitable[None]] | None = None) -> FastAPI:
    """The server's ASGI app.

    ``watch_disconnects``: stop waiting for (and drop from the queue) a request whose client has gone; Ray Serve
    cancels such requests itself, so its ingress passes False. ``on_shutdown`` runs when the app stops.
    """
    settings = service.settings

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        if on_shutdown is not None:
            await on_shutdown()

    app = FastAPI(title="metaeol-integrations embeddings", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible embeddings computed with MetaEOL (docs/serving.md).")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    async def check_key(request: Request) -> None:
        if settings.api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise APIError(401, "No API key given. Fix: send the header 'Authorization: Bearer <key>' (openai client: "
                           "api_key=...; the key is the server's --api-key or METAEOL_API_KEY).",
                           code="missing_api_key")
        if not hmac.compare_digest(given.strip().encode(), settings.api_key.encode()):
            raise APIError(401, "Incorrect API key. Fix: send the key the server was started with (--api-key or "
                           "METAEOL_API_KEY).", code="invalid_api_key")

    @app.get("/health", summary="Liveness (no key needed)")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": settings.served_model_name}

    @app.get("/v1/models", dependencies=[Depends(check_key)], summary="The served model ids")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(model_id, service.precision) for model_id in settings.model_tasks]}

    @app.get("/v1/models/{model_id}", dependencies=[Depends(check_key)], summary="One served model id")
    async def get_model(model_id: str) -> dict[str, Any]:
        _task_of(model_id)
        return model_card(model_id, service.precision)

    @app.post("/v1/embeddings", dependencies=[Depends(check_key)],
              summary="Embed texts (OpenAI format); NAME embeds documents, NAME-query queries")
    async def create_embeddings(body: EmbeddingRequest, request: Request) -> Response:
        task = _task_of(body.model)
        texts = _checked_texts(body)
        if body.dimensions is not None and body.dimensions > service.dimension:
            raise APIError(400, f"dimensions={body.dimensions} is more than this model's {service.dimension}. Fix: "
                           f"ask for 1..{service.dimension}, or leave dimensions out for the full vector.",
                           param="dimensions", code="invalid_dimensions")
        if watch_disconnects:
            embedded = await _unless_disconnected(backend.embed(texts, task), request)
            if embedded is None:
                return Response(status_code=CLIENT_CLOSED_REQUEST)
        else:
            embedded = await backend.embed(texts, task)
        vectors = service.finish(embedded.vectors, body.dimensions)
        return JSONResponse(embeddings_body(vectors, body.model, body.encoding_format, embedded.prompt_tokens))

    def _task_of(model_id: str) -> str:
        try:
            return settings.model_tasks[model_id]
        except KeyError:
            raise APIError(404, f"The model {model_id!r} is not served here. Fix: use {settings.served_model_name!r} "
                           f"for documents or {settings.query_model_name!r} for queries (GET /v1/models).",
                           param="model", code="model_not_found") from None

    def _checked_texts(body: EmbeddingRequest) -> list[str]:
        texts = body.texts()
        if not texts:
            raise APIError(400, f"'input' is an empty list. Fix: {TEXT_INPUT_FIX} with at least one text.",
                           param="input", code="empty_input")
        if len(texts) > settings.max_inputs:
            raise APIError(400, f"'input' has {len(texts)} texts; this server takes at most {settings.max_inputs} "
                           "per request. Fix: split the list over several requests.", param="input",
                           code="too_many_inputs")
        for index, text in enumerate(texts):
            if len(text) > settings.max_text_chars:
                raise APIError(400, f"input[{index}] has {len(text)} characters; the limit is "
                               f"{settings.max_text_chars}. Fix: split or shorten the text (texts under the limit are "
                               "truncated to the model's window inside the prompt).", param="input",
                               code="text_too_long")
        return texts

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        message, param = describe_validation_error(error.errors())
        return JSONResponse(error_body(message, param=param, code="invalid_request"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            message = (f"There is no route {request.method} {request.url.path}. Fix: POST /v1/embeddings, GET "
                       "/v1/models or GET /health (API docs: /docs).")
        elif error.status_code == 405:
            message = f"{request.url.path} does not take {request.method}. Fix: see /docs for each route's method."
        else:
            message = str(error.detail)
        return JSONResponse(error_body(message, code=f"http_{error.status_code}"), status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, error: Exception) -> JSONResponse:
        logger.exception("embedding request failed")
        return JSONResponse(error_body("The server failed to embed this request (see its log). Fix: retry; report it "
                                       "if it persists.", type="server_error", code="internal_error"),
                            status_code=500)

    return app


def describe_validation_error(errors: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    """One sentence naming the bad field and its fix, from FastAPI's list of validation errors."""
    first = errors[0] if errors else {"loc": ("body",), "type": "missing", "msg": "missing"}
    loc = [part for part in first.get("loc", ()) if part != "body"]
    kind = first.get("type", "")
    if kind == "json_invalid":
        return f"The request body is not valid JSON. Fix: {_BODY_FIX}.", None
    if not loc or isinstance(loc[0], int):
        return f"The request body must be a JSON object. Fix: {_BODY_FIX}.", None
    field = str(loc[0])
    fix = _FIELD_FIXES.get(field, "leave the field out")
    if kind == "missing":
        return f"'{field}' is required. Fix: {fix}.", field
    return f"'{field}' is invalid ({first.get('msg', kind)}). Fix: {fix}.", field


async def _unless_disconnected(work: Awaitable[Embedded], request: Request) -> Embedded | None:
    """``work``'s result, or None (``work`` cancelled) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_client_gone(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return None


async def _client_gone(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


class BodyLimit:
    """Refuse a request body over ``max_bytes`` with 413 (by its Content-Length, or while reading a chunked body)
    before the app parses it; the body is held in memory only up to the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            error_body(f"The request body is larger than this server's limit of {self.max_bytes} bytes. Fix: send "
                       "fewer or shorter texts per request.", code="body_too_large"),
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
