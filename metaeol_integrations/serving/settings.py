"""What a running server accepts and how it batches: one frozen settings object shared by the app and its backends."""

from __future__ import annotations

import os
from dataclasses import dataclass

API_KEY_ENV = "METAEOL_API_KEY"

# OpenAI's embeddings endpoint takes at most 2,048 inputs per request; clients (openai, LangChain, LlamaIndex) chunk
# their lists to fit it, so the same number here means no client has to be reconfigured.
OPENAI_MAX_INPUTS = 2048


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of ``metaeol serve``.

    Every limit refuses a request with a 4xx before any text reaches the model; texts under ``max_text_chars`` are
    still truncated inside the prompt's slot to the model's ``max_seq_length``, as everywhere in the library.
    """

    served_model_name: str
    """Id that embeds documents (``NAME``); ``NAME-query`` embeds queries with the model's query templates."""
    api_key: str | None = None
    """Bearer key every route but ``/health`` requires; None: no key (bind to 127.0.0.1 then)."""
    normalize: bool = False
    """L2-normalise the vectors; False returns them exactly as the model computes them (normalised or not)."""
    max_inputs: int = OPENAI_MAX_INPUTS
    """Inputs per request."""
    max_text_chars: int = 100_000
    """Characters per input text."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Request body size; a 2,048-input request of short texts is well under it."""
    max_batch_texts: int = 64
    """Texts merged into one ``encode`` call across requests."""
    batch_wait_ms: float = 5.0
    """How long the first waiting request holds the batch open for others."""
    batching: bool = True
    """Merge concurrent requests; False runs each request as its own ``encode`` call (the benchmark's baseline)."""
    max_queued_texts: int = 16_384
    """Texts waiting for the model before new requests get 429 (a bounded queue instead of unbounded memory)."""
    encode_batch_size: int = 16
    """``batch_size`` of each ``encode`` call (texts per forward batch; each text is K prompts)."""

    def __post_init__(self) -> None:
        for name in ("max_inputs", "max_text_chars", "max_body_bytes", "max_batch_texts", "max_queued_texts",
                     "encode_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServeSettings.{name} must be at least 1, got {getattr(self, name)}.")
        if self.max_queued_texts < self.max_inputs:
            raise ValueError(f"ServeSettings.max_queued_texts ({self.max_queued_texts}) must be at least max_inputs "
                             f"({self.max_inputs}), or a full request could never be queued.")
        if self.batch_wait_ms < 0:
            raise ValueError(f"ServeSettings.batch_wait_ms must be >= 0, got {self.batch_wait_ms}.")
        if not self.served_model_name or self.served_model_name.endswith(QUERY_SUFFIX):
            raise ValueError(
                f"served_model_name {self.served_model_name!r} must be non-empty and not end in {QUERY_SUFFIX!r} "
                "(that suffix names the query id)."
            )

    @property
    def query_model_name(self) -> str:
        """The id whose inputs are embedded as queries (``encode_query``)."""
        return self.served_model_name + QUERY_SUFFIX

    @property
    def model_tasks(self) -> dict[str, str]:
        """Served model id -> sentence-transformers task."""
        return {self.served_model_name: "document", self.query_model_name: "query"}


QUERY_SUFFIX = "-query"


def api_key_from_environment() -> str | None:
    """The key in ``METAEOL_API_KEY``, None when unset or empty."""
    return os.environ.get(API_KEY_ENV) or None


def default_served_name(model: str) -> str:
    """The id a model is served under when none is given: a preset's or hub id's name, a folder's or file's stem."""
    name = model.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return name[: -len(".gguf")] if name.endswith(".gguf") else name
