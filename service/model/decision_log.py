"""The decision log, a worker's half: every scored row appended to a local spool file.

Rows are fixed-width records (`ml.runtime.capture_records`) buffered in memory and written
with one `os.write` every 0.2 s (or every FLUSH_BYTES) to a file only this worker writes; once
written the kernel holds them, so a worker killed with SIGKILL loses at most its last 0.2 s of
rows, and a stopping worker flushes them all. The worker never touches the store; the shipper
(`service.server.shipper`) turns closed spool files into Parquet in the store.

Spool files are named `<worker>-<seq>.open` while written and renamed to `.ready` when closed:
every `rotate_s` by the housekeeping loop, at `max_file_bytes`, and at shutdown. The Gunicorn
master readies the open file of a worker that died (`ready_orphans`).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ml.runtime.capture_records import encode_many, encode_one
from service.observe.logging import get_logger
from service.observe.metrics import Metrics

log = get_logger("service.model.decision_log")

OPEN = ".open"
READY = ".ready"
# Rows wait in memory for the housekeeping loop's flush (every 0.2 s) or until this much is
# buffered: a write per request costs ~4 us of syscall on ext4, 1-2 % of a request's worker
# CPU, for nothing a buffer does not give (docs/performance.md, the decision log); a worker
# killed with SIGKILL loses at most the last 0.2 s of rows.
FLUSH_BYTES = 64 * 1024


class Origin(NamedTuple):
    """Who asked, and when: what a captured row carries besides the model's answer. A tuple:
    one is made for every request, and a frozen dataclass took 1.8 us to make."""

    request_id: str
    api_key_id: str
    received_at: float
    transaction_ids: list[str | None] | None = None  # per row; None: no row named one


class DecisionLog:
    def __init__(
        self,
        spool_dir: Path,
        metrics: Metrics,
        *,
        sample_rate: float = 1.0,
        max_file_bytes: int = 8 * 1024 * 1024,
        worker: str | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        self.sample_rate = sample_rate
        self.max_file_bytes = max_file_bytes
        # The pid first: the master finds a dead worker's files by it (`ready_orphans`).
        self.worker = worker or f"{os.getpid()}_{time.time_ns() // 1_000_000}"
        self._metrics = metrics
        self._seq = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._bytes = 0
        self._opened_at = 0.0
        self._buffer = bytearray()
        self._buffered_rows = 0

    def record_one(
        self,
        origin: Origin,
        version: str,
        row: list[float],
        probability: float,
        threshold: float,
        is_fraud: bool,
    ) -> None:
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:  # noqa: S311
            return
        tid = origin.transaction_ids[0] if origin.transaction_ids else None
        record = encode_one(
            origin.received_at,
            origin.request_id,
            tid,
            version,
            origin.api_key_id,
            row,
            probability,
            threshold,
            is_fraud,
        )
        self._append(record, 1)

    def record_many(
        self,
        origin: Origin,
        version: str,
        rows: np.ndarray,
        probabilities: np.ndarray,
        threshold: float,
        flags: np.ndarray,
    ) -> None:
        picked = None
        if self.sample_rate < 1.0:
            picked = np.flatnonzero(np.random.random(rows.shape[0]) < self.sample_rate)
            if picked.size == 0:
                return
            picked = picked.astype(np.uint32)
        records = encode_many(
            origin.received_at,
            origin.request_id,
            origin.transaction_ids,
            version,
            origin.api_key_id,
            rows,
            probabilities,
            threshold,
            flags,
            picked,
        )
        self._append(records, rows.shape[0] if picked is None else picked.size)

    def _append(self, records: bytes, n_rows: int) -> None:
        self._buffer += records
        self._buffered_rows += n_rows
        if len(self._buffer) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows to the spool file: the housekeeping loop's call every
        0.2 s, and at FLUSH_BYTES. Counted as captured once written."""
        if not self._buffer:
            return
        data, n_rows = bytes(self._buffer), self._buffered_rows
        self._buffer.clear()
        self._buffered_rows = 0
        try:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            written = os.write(self._fd, data)
            if written != len(data):  # a full disk: the rest did not fit
                raise OSError(f"wrote {written} of {len(data)} bytes")
        except OSError as exc:
            # The answers did not wait for the disk, and must not fail with it: count, go on.
            self._metrics.capture.dropped.labels("write_failed").inc(n_rows)
            log.warning("capture_write_failed", error=str(exc), rows=n_rows)
            self._close_file()
            return
        self._bytes += len(data)
        self._metrics.capture.captured.inc(n_rows)
        if self._bytes >= self.max_file_bytes:
            self.rotate()

    def _open(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._path = self.spool_dir / f"{self.worker}-{self._seq:08d}{OPEN}"
        self._seq += 1
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._bytes = 0
        self._opened_at = time.monotonic()

    def rotate_if_older(self, max_age_s: float) -> None:
        """Flush; and close the current file once it is `max_age_s` old (the housekeeping
        loop's call, every 0.2 s), so rows reach the shipper within about that long."""
        self.flush()
        if self._fd is not None and time.monotonic() - self._opened_at >= max_age_s:
            self.rotate()

    def rotate(self) -> None:
        """Close the current file for the shipper; the next row opens a new one."""
        self.flush()
        path = self._path
        self._close_file()
        if path is not None:
            # Already readied by the master (the worker looked dead): nothing is lost.
            with contextlib.suppress(FileNotFoundError):
                path.rename(path.with_suffix(READY))

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._path = None

    def close(self) -> None:
        self.rotate()


def ready_orphans(spool_dir: Path, pid: int | None = None) -> int:
    """Ready the open spool files of a worker that is gone (of every worker when `pid` is None,
    as at start-up, before any worker runs). Returns how many were readied."""
    if not spool_dir.is_dir():
        return 0
    pattern = f"{pid}_*{OPEN}" if pid is not None else f"*{OPEN}"
    readied = 0
    for path in spool_dir.glob(pattern):
        try:
            path.rename(path.with_suffix(READY))
            readied += 1
        except FileNotFoundError:  # the worker readied it itself
            pass
    return readied
