"""Cross-request batching for the uvicorn server: concurrent requests wait a few milliseconds and share one
``encode`` call, which runs in a worker thread so the event loop keeps accepting requests."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from metaeol_integrations.serving.protocol import APIError
from metaeol_integrations.serving.service import Embedded, Job
from metaeol_integrations.serving.settings import ServeSettings


@dataclass
class _Pending:
    job: Job
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Merges jobs that arrive within ``batch_wait_ms`` of each other (up to ``max_batch_texts`` texts) into one
    call of ``run``. A job whose caller is cancelled (client gone) before its batch starts leaves the queue and is
    never computed."""

    def __init__(self, run: Callable[[Sequence[Job]], list[Embedded]], settings: ServeSettings) -> None:
        self._run = run
        self._settings = settings
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queued_texts = 0
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metaeol-encode")
        self.batches_run = 0
        self.jobs_run = 0

    @property
    def queued_texts(self) -> int:
        """Texts waiting for the model (not counting the batch being computed)."""
        return self._queued_texts

    async def embed(self, texts: Sequence[str], task: str) -> Embedded:
        """The vectors of ``texts``, computed in a batch shared with concurrent callers."""
        if self._queued_texts + len(texts) > self._settings.max_queued_texts:
            raise APIError(429, f"The server has {self._queued_texts} texts waiting, the most it queues is "
                           f"{self._settings.max_queued_texts}. Fix: retry after a moment, or send fewer texts at "
                           "once.", type="server_busy", code="queue_full", headers={"Retry-After": "1"})
        self._ensure_worker()
        pending = _Pending(Job(tuple(texts), task), asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._queued_texts += len(texts)
        self._arrived.set()
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            if pending in self._queue:  # not started: free its place so no one computes it
                self._queue.remove(pending)
                self._queued_texts -= len(texts)
            pending.future.cancel()
            raise

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._arrived = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            if self._settings.batching:
                await self._hold_open()
            batch = self._take_batch()
            if not batch:
                continue
            self.batches_run += 1
            self.jobs_run += len(batch)
            try:
                results = await loop.run_in_executor(self._executor, self._run, [pending.job for pending in batch])
            except Exception as error:  # noqa: BLE001 - the callers get it; the worker must keep serving
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            for pending, result in zip(batch, results):
                if not pending.future.done():
                    pending.future.set_result(result)

    async def _hold_open(self) -> None:
        """Wait until the batch is full or the oldest job has waited ``batch_wait_ms``."""
        deadline = self._queue[0].enqueued + self._settings.batch_wait_ms / 1000
        while self._queue and self._queued_texts < self._settings.max_batch_texts:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _take_batch(self) -> list[_Pending]:
        """The oldest job, then later ones while the batch stays within ``max_batch_texts`` (a larger job runs
        alone); one job per batch when batching is off."""
        batch: list[_Pending] = []
        texts = 0
        while self._queue:
            size = len(self._queue[0].job.texts)
            if batch and (not self._settings.batching or texts + size > self._settings.max_batch_texts):
                break
            pending = self._queue.popleft()
            self._queued_texts -= size
            batch.append(pending)
            texts += size
        return batch

    async def close(self) -> None:
        """Stop the worker and its thread (the app's shutdown)."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)
