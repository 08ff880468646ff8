"""The decision log's counts, shared by the workers (captured rows) and the shipper (shipped,
spooled and dropped rows): both processes write the same families, and /metrics and EMF sum
them over every process of the task."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

# Why a row never reached the store.
DROP_REASONS = (
    "write_failed",  # the worker could not append it to the spool (disk full, unwritable)
    "spool_full",  # the store was down and the spool past FRAUD_CAPTURE_SPOOL_MAX_BYTES
    "torn",  # half a record, from a worker killed in the middle of a write
    "unshipped_at_exit",  # the store was still down when the task stopped
)


class CaptureMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.captured = Counter(
            "fraud_capture_captured_rows_total",
            "Scored rows appended to the decision log's local spool before their answer left.",
            registry=registry,
        )
        self.shipped = Counter(
            "fraud_capture_shipped_rows_total",
            "Captured rows written to the store as Parquet (captures/date=/hour=/).",
            registry=registry,
        )
        self.spooled = Gauge(
            "fraud_capture_spooled_rows",
            "Captured rows waiting in the local spool for the store.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.dropped = Counter(
            "fraud_capture_dropped_rows_total",
            "Captured rows lost, by reason: " + ", ".join(DROP_REASONS) + ".",
            ["reason"],
            registry=registry,
        )
        for reason in DROP_REASONS:  # at 0 from the start, so increase() sees the first drop
            self.dropped.labels(reason)
