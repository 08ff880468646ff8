"""The decision log, the shipper's half: closed spool files to Parquet in the store.

One process per task, started and supervised by the Gunicorn master (`ShipperProcess` in
`service.server.shipper_process`), so pyarrow (~37 MB) and the store's writer live here and
never in a worker. Every second it ships each `.ready` spool file as one Parquet file per hour
it spans (`ml.runtime.capture_files`), then deletes it. While the store is down files wait, and
attempts back off to `MAX_BACKOFF_S`; past FRAUD_CAPTURE_SPOOL_MAX_BYTES the oldest are dropped
and counted.

It stops when its standard input closes: the master closes it at exit, after every worker has
finished its requests and closed its spool file, and the kernel closes it if the master dies.
SIGINT and SIGTERM are ignored, so a Ctrl-C that reaches the whole process group cannot stop it
before the workers' last rows are in the spool. It then ships everything left, for at most
FRAUD_CAPTURE_DRAIN_TIMEOUT_S.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from ml.runtime.capture_files import capture_key, hours_of, parquet_bytes, records_to_table
from ml.runtime.capture_records import RECORD_BYTES, decode
from ml.runtime.store import ArtifactStore, ObjectExists, StoreError, StoreTimeouts
from ml.runtime.store_uri import open_store
from service.model.decision_log import OPEN, READY, ready_orphans
from service.observe.capture_metrics import CaptureMetrics
from service.observe.logging import configure_logging, flush_logs, get_logger
from service.server.memory import release_free_memory
from service.settings import load_settings

log = get_logger("service.server.shipper")

POLL_S = 1.0
SHIPPER_NICENESS = 10
MAX_BACKOFF_S = 30.0


@dataclass
class Shipper:
    spool_dir: Path
    store: ArtifactStore
    metrics: CaptureMetrics
    task: str
    max_spool_bytes: int
    _retry_at: float = 0.0
    _backoff_s: float = 0.0
    _failing: bool = field(default=False)

    def cycle(self, now: float | None = None) -> None:
        """Drop past the spool's limit, ship what is ready (unless backing off), count."""
        now = time.monotonic() if now is None else now
        self._enforce_limit()
        if now >= self._retry_at:
            ready = self._ready()
            for path in ready:
                if not self._ship(path):
                    self._back_off(now)
                    break
            if ready:
                release_free_memory()  # a shipment's buffers back to the OS (shipper_process)
        self.metrics.spooled.set(self.spooled_bytes() // RECORD_BYTES)

    def drain(self, timeout_s: float) -> int:
        """At exit, every worker gone: ship every file, open ones too, for at most `timeout_s`.
        Returns the rows left unshipped (counted as dropped: a task's disk goes with it)."""
        ready_orphans(self.spool_dir)
        deadline = time.monotonic() + timeout_s
        waiting = self._ready()
        while waiting and time.monotonic() < deadline:
            if self._ship(waiting[0]):
                waiting.pop(0)
            else:
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        left = self.spooled_bytes() // RECORD_BYTES
        self.metrics.spooled.set(left)
        if left:
            self.metrics.dropped.labels("unshipped_at_exit").inc(left)
            log.error("capture_unshipped_at_exit", rows=left, spool=str(self.spool_dir))
        return left

    def _ready(self) -> list[Path]:
        return sorted(self.spool_dir.glob(f"*{READY}"), key=_age_order)

    def spooled_bytes(self) -> int:
        return sum(
            _size(path) for path in self.spool_dir.glob("*.*") if path.suffix in (OPEN, READY)
        )

    def _ship(self, path: Path) -> bool:
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # dropped meanwhile
            return True
        records, torn = decode(data)
        if torn:
            self.metrics.dropped.labels("torn").inc()
            log.warning("capture_torn_record", file=path.name, bytes=torn)
        worker, _, seq = path.stem.rpartition("-")
        try:
            for part in hours_of(records):
                key = capture_key(float(part["received_at"][0]), self.task, worker, int(seq))
                # Already there: shipped before a restart, not yet deleted; the same rows.
                with contextlib.suppress(ObjectExists):
                    self.store.put_if_absent(key, parquet_bytes(records_to_table(part)))
        except (StoreError, OSError) as exc:
            if not self._failing:
                log.warning("capture_store_unavailable", store=self.store.uri, error=str(exc))
            self._failing = True
            return False
        if self._failing:
            log.info("capture_store_back", store=self.store.uri)
        self._failing, self._backoff_s = False, 0.0
        path.unlink(missing_ok=True)
        self.metrics.shipped.inc(len(records))
        return True

    def _back_off(self, now: float) -> None:
        self._backoff_s = min(MAX_BACKOFF_S, max(POLL_S, self._backoff_s * 2))
        self._retry_at = now + self._backoff_s

    def _enforce_limit(self) -> None:
        over = self.spooled_bytes() - self.max_spool_bytes
        for path in self._ready():
            if over <= 0:
                break
            size = _size(path)
            path.unlink(missing_ok=True)
            over -= size
            self.metrics.dropped.labels("spool_full").inc(size // RECORD_BYTES)
            log.error(
                "capture_spool_full",
                dropped_rows=size // RECORD_BYTES,
                file=path.name,
                limit_bytes=self.max_spool_bytes,
            )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _age_order(path: Path) -> tuple[float, str]:
    try:
        return path.stat().st_mtime, path.name
    except FileNotFoundError:
        return 0.0, path.name


def main() -> None:
    """`python -m service.server.shipper`, as the Gunicorn master starts it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Answers first: when the cores are busy the workers keep them, and the spool absorbs the
    # delay. At the default priority a shipment (~100 ms of CPU for a 15,000-row file) took a
    # core from the workers mid-burst (docs/performance.md, the decision log).
    os.nice(SHIPPER_NICENESS)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    assert settings.capture_spool_dir is not None, "the Gunicorn config sets it"
    timeouts = StoreTimeouts(
        settings.store_connect_timeout_s,
        settings.store_read_timeout_s,
        settings.store_attempts,
        settings.store_object_timeout_s,
    )
    shipper = Shipper(
        spool_dir=settings.capture_spool_dir,
        store=open_store(settings.capture_store_uri or settings.store_uri, timeouts),
        metrics=CaptureMetrics(None),
        task=settings.capture_task_id or socket.gethostname(),
        max_spool_bytes=settings.capture_spool_max_bytes,
    )
    log.info("capture_shipper_started", spool=str(shipper.spool_dir), store=shipper.store.uri)
    while not _parent_gone():
        shipper.cycle()
        flush_logs()
    shipper.drain(settings.capture_drain_timeout_s)
    log.info("capture_shipper_stopped")
    flush_logs()


def _parent_gone(wait_s: float = POLL_S) -> bool:
    """Wait up to `wait_s` for the master to close our stdin (or die, which closes it)."""
    readable, _, _ = select.select([0], [], [], wait_s)
    return bool(readable) and os.read(0, 4096) == b""


if __name__ == "__main__":
    main()
