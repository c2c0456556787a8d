"""OpenAI's embeddings wire format: the request model, the response body and the error shape.

Field names and meanings follow https://platform.openai.com/docs/api-reference/embeddings so that the official
``openai`` client, LangChain's ``OpenAIEmbeddings`` and LlamaIndex's ``OpenAILikeEmbedding`` work unchanged.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

OWNER = "metaeol-integrations"
_STARTED = int(time.time())

TEXT_INPUT_FIX = 'send "input" as a string or a list of strings'


class EmbeddingRequest(BaseModel):
    """Body of ``POST /v1/embeddings``. Unknown fields (e.g. ``user``) are accepted and ignored, as OpenAI does."""

    model_config = ConfigDict(extra="ignore")

    # Token-id inputs parse too, so that they get an error that names the fix instead of a type error.
    input: Union[str, list[str], list[int], list[list[int]]]
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def texts(self) -> list[str]:
        """The inputs as a list of texts; token-id inputs raise :class:`APIError`."""
        items = [self.input] if isinstance(self.input, str) else list(self.input)
        if any(not isinstance(item, str) for item in items):
            raise APIError(
                400, "Token-id inputs are not supported: this server tokenises with its own LLM's tokenizer, not "
                f"tiktoken. Fix: {TEXT_INPUT_FIX} (LangChain: OpenAIEmbeddings(..., "
                "check_embedding_ctx_length=False)).", param="input", code="token_ids_not_supported",
            )
        return items


class APIError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """A vector as OpenAI sends it: a list of floats, or base64 of little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector.astype(np.float32).tolist()


def embeddings_body(vectors: np.ndarray, model: str, encoding_format: str, prompt_tokens: int) -> dict[str, Any]:
    """The response of ``POST /v1/embeddings``."""
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": index, "embedding": encode_vector(vector, encoding_format)}
                 for index, vector in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def model_card(model_id: str, precision: dict[str, str] | None = None) -> dict[str, Any]:
    """One entry of ``GET /v1/models``; ``precision`` (``{"dtype": ..., "dtype_reason": ...}``) adds the compute
    dtype the model runs in, an extra field OpenAI clients ignore."""
    return {"id": model_id, "object": "model", "created": _STARTED, "owned_by": OWNER, **(precision or {})}
