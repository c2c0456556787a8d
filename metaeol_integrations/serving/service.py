"""The model side of the server: one ``encode`` call for many requests' texts, split back per request."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sentence_transformers import SentenceTransformer

from metaeol_integrations.serving.settings import ServeSettings


@dataclass(frozen=True)
class Job:
    """One request's texts and the sentence-transformers task they are embedded for ("document" or "query")."""

    texts: tuple[str, ...]
    task: str


@dataclass(frozen=True)
class Embedded:
    """A request's vectors (the model's output, full width, not yet normalised by the server) and its token count."""

    vectors: np.ndarray
    prompt_tokens: int


class EmbeddingService:
    """Runs jobs on a loaded model: the texts of all jobs of a task go through one ``encode_document`` or
    ``encode_query`` call, so merged requests cost one call per task, and each job gets exactly the vectors that
    call gave its texts (MetaEOL's vectors do not depend on batch neighbours)."""

    def __init__(self, model: SentenceTransformer, settings: ServeSettings) -> None:
        self.model = model
        self.settings = settings
        self.dimension = int(model.get_embedding_dimension())
        choice = getattr(model[0], "precision", None)  # a MetaEOL module's PrecisionChoice
        self.precision = ({"dtype": choice.name, "dtype_reason": choice.reason} if choice is not None
                          else {"dtype": str(model.dtype).removeprefix("torch.")})
        self.encode_calls = 0
        # One forward pass at a time: the module's prefix caches and torch's threads are not shared safely.
        self._lock = threading.Lock()

    def run(self, jobs: Sequence[Job]) -> list[Embedded]:
        """Embed ``jobs`` (blocking; call it off the event loop)."""
        with self._lock:
            vectors: list[np.ndarray | None] = [None] * len(jobs)
            for task in dict.fromkeys(job.task for job in jobs):
                members = [index for index, job in enumerate(jobs) if job.task == task]
                texts = [text for index in members for text in jobs[index].texts]
                encoded = self._encode(texts, task)
                start = 0
                for index in members:
                    count = len(jobs[index].texts)
                    vectors[index] = encoded[start:start + count]
                    start += count
            return [Embedded(vector_block, self.count_tokens(job.texts)) for vector_block, job in zip(vectors, jobs)]

    def _encode(self, texts: list[str], task: str) -> np.ndarray:
        encode = self.model.encode_query if task == "query" else self.model.encode_document
        self.encode_calls += 1
        return encode(texts, batch_size=self.settings.encode_batch_size, normalize_embeddings=False,
                      convert_to_numpy=True, show_progress_bar=False)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens of the texts themselves under the LLM's tokenizer (``usage``; the templates are not counted)."""
        tokenizer = self.model.tokenizer
        return sum(len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]) if texts else 0

    def finish(self, vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
        """What a request gets: the first ``dimensions`` values (``truncate_dim``), then L2-normalised if the server
        normalises, in the order ``SentenceTransformer.encode`` applies them."""
        if dimensions is not None:
            vectors = vectors[:, :dimensions]
        if self.settings.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors.astype(np.float32, copy=False)
