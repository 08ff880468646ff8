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


def _add_pid(_: Any, __: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    record = event_dict.get("_record")
    if record is not None:
        event_dict["pid"] = record.process
    return event_dict


def stdlib_json_formatter() -> logging.Formatter:
    """Records of the standard library's logging (Gunicorn, Uvicorn, botocore) as JSON lines
    in the shape of ours (`event`, `level`, `timestamp`, plus `logger` and `pid`), so a
    `json` deployment writes one stream a log query can parse throughout."""
    return structlog.stdlib.ProcessorFormatter(
        processor=structlog.processors.JSONRenderer(),
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _add_pid,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
    )


def gunicorn_json_logconfig(level: str) -> dict[str, Any]:
    """Gunicorn's `logconfig_dict` for `FRAUD_LOG_FORMAT=json`. Uvicorn's workers take the
    `gunicorn.error` handlers over, so their lines come out the same way."""
    name = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    quiet = {"level": name, "handlers": ["console"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": name, "handlers": ["console"]},
        "loggers": {"gunicorn.error": quiet, "gunicorn.access": quiet},
        "handlers": {"console": handler},
        "formatters": {"json": {"()": "service.observe.logging.stdlib_json_formatter"}},
    }


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
