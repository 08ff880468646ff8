"""Background loops that cannot die: start-up load, polling and peer watching run under
`supervise`, which logs any exception with its traceback, counts it, and starts the loop
again. Before, an exception nobody expected ended the poll task silently, in every worker, and
later promotions were never picked up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from service.observe.logging import get_logger
from service.observe.metrics import Metrics

log = get_logger("service.model.supervisor")
RESTART_DELAY_S = 1.0


async def supervise(
    name: str,
    loop: Callable[[], Awaitable[None]],
    metrics: Metrics,
    *,
    restart_delay_s: float = RESTART_DELAY_S,
) -> None:
    """Run `loop` until it returns; after any exception, log, count and run it again.
    Cancellation (shutdown) is not an exception here and ends it."""
    while True:
        try:
            await loop()
            return
        except Exception:
            log.exception("background_task_failed", task=name, restart_in_s=restart_delay_s)
            metrics.background_errors.labels(name).inc()
            await asyncio.sleep(restart_delay_s)
