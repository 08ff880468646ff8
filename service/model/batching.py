"""Scoring without HTTP: rows in, probabilities out, with the bundle that made them (the data
plane decides against the threshold).

Single-row requests go through `MicroBatcher`: concurrent requests that reach the event loop
together are scored in one model call. There is no waiting window: the first request schedules a
flush on the next loop turn, everything that arrived meanwhile joins it, so an idle service
answers at once and a busy one amortises the per-call cost over many rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml.runtime.bundle import ModelBundle

# Most rows one model call of the micro-batcher takes; the rest wait for the next loop turn.
MICRO_BATCH_ROWS = 64
# Above this many rows, scoring moves to a thread so the event loop keeps serving. The serving
# form scores 1,000 rows in ~3 ms, less than the thread hop and the GIL contention cost (and
# each hop's buffers held ~14 MB more per worker after a batch load): only batches over the
# default FRAUD_MAX_BATCH_ROWS go to a thread.
THREAD_ROWS = 4000


@dataclass(frozen=True)
class Scored:
    bundle: ModelBundle
    probabilities: np.ndarray


def score_rows(bundle: ModelBundle, rows: np.ndarray) -> Scored:
    return Scored(bundle, bundle.score(rows))


async def score_batch(get_bundle: Callable[[], ModelBundle], rows: np.ndarray) -> Scored:
    bundle = get_bundle()  # one bundle for the whole batch, even if a reload swaps meanwhile
    if rows.shape[0] > THREAD_ROWS:
        return await asyncio.to_thread(score_rows, bundle, rows)
    return score_rows(bundle, rows)


class MicroBatcher:
    def __init__(
        self,
        get_bundle: Callable[[], ModelBundle],
        max_rows: int = MICRO_BATCH_ROWS,
        on_batch: Callable[[ModelBundle, np.ndarray, np.ndarray], None] | None = None,
    ) -> None:
        self._get_bundle = get_bundle
        self._on_batch = on_batch
        self._max_rows = max_rows
        self._pending: list[tuple[list[float], asyncio.Future[tuple[float, ModelBundle]]]] = []
        self._scheduled = False

    def score_one(self, row: list[float]) -> asyncio.Future[tuple[float, ModelBundle]]:
        """Queue one row of raw features; the future gets (probability, bundle used)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[float, ModelBundle]] = loop.create_future()
        self._pending.append((row, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending[: self._max_rows], self._pending[self._max_rows :]
        if self._pending:  # more than one model call's worth: the rest go on the next turn
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        try:
            bundle = self._get_bundle()
            rows = np.array([row for row, _ in pending], dtype=np.float64)
            probabilities = bundle.score(rows)
        except Exception as exc:  # noqa: BLE001 - not swallowed: every waiting request gets it
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        if self._on_batch is not None:  # (bundle, rows, probabilities)
            self._on_batch(bundle, rows, probabilities)
        for (_, future), probability in zip(pending, probabilities, strict=True):
            if not future.done():
                future.set_result((float(probability), bundle))
