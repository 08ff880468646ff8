"""structlog set-up: one JSON object per line on stdout (or readable lines on a terminal).

Access lines are the bulk of the output, one per request. structlog's `BytesLogger` flushes
after every line, which under load is a `write` system call per request (measured: ~30-50 us of
worker CPU a request). Here info and debug lines go through a 64 KiB buffer that the app flushes
every 0.2 s and at shutdown; warnings and errors are written and flushed at once. A worker killed
with SIGKILL can lose at most the last 0.2 s of access lines, never an error.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import IO, Any

import orjson
import structlog

FLUSH_INTERVAL_S = 0.2


class BufferedLineLogger:
    """structlog logger: info/debug buffered, warning and above flushed immediately."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()  # registry loads may log from worker threads

    def msg(self, message: bytes) -> None:
        with self._lock:
            self._stream.write(message + b"\n")

    debug = info = log = msg

    def urgent(self, message: bytes) -> None:
        with self._lock:
            self._stream.write(message + b"\n")
            self._stream.flush()

    warning = warn = error = err = critical = exception = fatal = failure = urgent

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()


_sink: BufferedLineLogger | None = None


def flush_logs() -> None:
    """Write out buffered lines (the app calls this every FLUSH_INTERVAL_S and at shutdown)."""
    if _sink is not None:
        _sink.flush()


def configure_logging(level: str = "info", fmt: str = "json", *, cache: bool = True) -> None:
    """`cache=False` re-reads the configuration on every call (tests that reconfigure)."""
    global _sink
    numeric = logging.getLevelName(level.upper())
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        stream = io.BufferedWriter(io.FileIO(sys.stdout.fileno(), "wb", closefd=False), 1 << 16)
        _sink = BufferedLineLogger(stream)
        sink = _sink

        def factory(*args: Any) -> BufferedLineLogger:
            return sink

        logger_factory: Any = factory
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        logger_factory = structlog.PrintLoggerFactory(sys.stdout)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=logger_factory,
        cache_logger_on_first_use=cache,
    )
    # Libraries that use the standard library logging go through the same level.
    logging.basicConfig(level=numeric, stream=sys.stdout, format="%(message)s")
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
