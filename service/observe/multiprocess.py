"""Reading every Gunicorn worker's samples from PROMETHEUS_MULTIPROC_DIR, and what is derived
from them at scrape time: drift (PSI) over all workers, and the master's metrics server."""

from __future__ import annotations

import math
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_wsgi_server
from prometheus_client.multiprocess import MultiProcessCollector

from ml.runtime.drift import BINS, PSI_DRIFT, TRACKED, psi

# What reading the workers' files raises when it catches one mid-write, as a worker that is
# starting creates its file (a 0-byte file: struct.error), grows it or adds a key (a length
# past the used size: prometheus_client's RuntimeError "file is corrupted"; half a key:
# ValueError), or exits (OSError). Each lasts microseconds; a second read finds it whole.
TORN_READ_ERRORS: tuple[type[Exception], ...] = (struct.error, RuntimeError, ValueError, OSError)
READ_ATTEMPTS = 3


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def read_worker_families(
    attempts: int = READ_ATTEMPTS, pause: Callable[[float], None] = time.sleep
) -> list[Metric]:
    """Every worker's samples from PROMETHEUS_MULTIPROC_DIR, read again (after a millisecond)
    when a file was caught mid-write; the last attempt's error is raised."""
    for _ in range(attempts - 1):
        try:
            return list(MultiProcessCollector(None).collect())  # type: ignore[no-untyped-call]
        except TORN_READ_ERRORS:
            pause(0.001)
    return list(MultiProcessCollector(None).collect())  # type: ignore[no-untyped-call]


@dataclass
class DriftStatus:
    live_rows: int
    psi: dict[str, float | None] = field(default_factory=dict)  # None: no live row yet


def drift_status(families: Iterable[Metric]) -> DriftStatus | None:
    """PSI of each tracked series over the workers' windows (samples of one process, or
    summed over all live workers); None when the served model has no drift reference."""
    index = {name: i for i, name in enumerate(TRACKED)}
    tables = {
        name: np.zeros((len(TRACKED), BINS))
        for name in ("fraud_drift_window_rows", "fraud_drift_reference_ratio")
    }
    for family in families:
        table = tables.get(family.name)
        if table is None:
            continue
        for sample in family.samples:
            table[index[sample.labels["feature"]], int(sample.labels["bin"])] = sample.value
    expected, counts = tables["fraud_drift_reference_ratio"], tables["fraud_drift_window_rows"]
    if not expected.any():
        return None
    values = psi(expected, counts)
    return DriftStatus(
        live_rows=int(counts[0].sum()),
        psi={
            name: None if math.isnan(v) else round(v, 6)
            for name, v in zip(TRACKED, values.tolist(), strict=True)
        },
    )


class DriftCollector:
    """Prometheus families derived at scrape time: `fraud_drift_psi` per tracked series, and
    `fraud_drift_live_rows`, the rows they rest on."""

    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def describe(self) -> list[Metric]:
        return []  # derived: nothing to check for name clashes at registration

    def collect(self) -> Iterator[Metric]:
        yield from drift_families(drift_status(self._families()))


def drift_families(status: DriftStatus | None) -> Iterator[Metric]:
    psi_family = GaugeMetricFamily(
        "fraud_drift_psi",
        "Population stability of each tracked input (Time as time of day) and of the score "
        f"over the drift window against the training rows, over all workers: > {PSI_DRIFT} is "
        "drift.",
        labels=["feature"],
    )
    rows_family = GaugeMetricFamily(
        "fraud_drift_live_rows", "Live rows of the drift window the PSI values rest on."
    )
    if status is not None:
        rows_family.add_metric([], status.live_rows)
        for name, value in status.psi.items():
            if value is not None:
                psi_family.add_metric([name], value)
    yield psi_family
    yield rows_family


class _WithDrift:
    """Every worker's samples from PROMETHEUS_MULTIPROC_DIR, plus the drift families derived
    from them: one read of the files per scrape."""

    def collect(self) -> Iterator[Metric]:
        families = read_worker_families()
        yield from families
        yield from drift_families(drift_status(families))


def multiprocess_registry() -> CollectorRegistry:
    """A registry that reads every worker's samples from PROMETHEUS_MULTIPROC_DIR."""
    registry = CollectorRegistry()
    registry.register(_WithDrift())
    return registry


@dataclass
class MetricsServer:
    """Prometheus text for every worker, served by the Gunicorn master on a port of its own
    (FRAUD_METRICS_PORT). It reads the workers' multiprocess files, so it answers even while
    every worker is busy or restarting."""

    httpd: WSGIServer
    thread: threading.Thread

    @classmethod
    def start(cls, host: str, port: int) -> MetricsServer:
        httpd, thread = start_wsgi_server(port, addr=host, registry=multiprocess_registry())
        return cls(httpd, thread)

    def forget_in_child(self) -> None:
        """In a forked worker: close this process's copy of the listening socket only."""
        self.httpd.socket.close()
