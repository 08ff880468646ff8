"""The service's own figures for CloudWatch, as Embedded Metric Format (EMF) log lines.

In ECS the awslogs driver sends stdout to CloudWatch Logs, which turns every JSON line with an
`_aws` member into metrics: no agent, no PutMetricData permission, no extra process. The
Gunicorn master writes one line every FRAUD_EMF_INTERVAL_S from the workers' multiprocess
files (the same figures /metrics serves), so a task reports once, however many workers it has:

    {"_aws": {"Timestamp": 1763780000000, "CloudWatchMetrics": [{"Namespace": "FraudScoring",
      "Dimensions": [["Service"]], "Metrics": [{"Name": "ReloadFailures", "Unit": "Count"},
      ...]}]}, "Service": "fraud-api", "ReloadFailures": 0, ..., "ScorePSI": 0.013,
      "MaxInputPSI": 0.021, "MaxInputPSIFeature": "V14", "DriftLiveRows": 51234}

Counts are per interval (deltas of the counters); PSI values are over the workers' drift
windows (FRAUD_DRIFT_WINDOW_S), present once 1,000 live rows were counted
(`ml.runtime.drift.MIN_LIVE_ROWS`: fewer is sampling noise).
CloudFormation's alarms (infra/fraud-scoring.yaml) watch ReloadFailures and ScorePSI.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client.core import Metric

from ml.runtime.drift import MIN_LIVE_ROWS, SCORE
from service.observe.multiprocess import TORN_READ_ERRORS, drift_status, read_worker_families

NAMESPACE = "FraudScoring"
COUNTS = {  # EMF metric -> (Prometheus family, label filter)
    "ReloadFailures": ("fraud_model_reloads", {"result": "failure"}),
    "ModelRefusals": ("fraud_model_refusals", {}),
    "Predictions": ("fraud_predictions", {}),
    # The decision log (service/server/shipper.py): an alarm watches DroppedRows.
    "CapturedRows": ("fraud_capture_captured_rows", {}),
    "ShippedRows": ("fraud_capture_shipped_rows", {}),
    "DroppedRows": ("fraud_capture_dropped_rows", {}),
}
LEVELS = {"SpooledRows": "fraud_capture_spooled_rows"}  # gauges: the level now, not a delta


def _totals(families: Iterable[Metric]) -> tuple[dict[str, float], list[Metric]]:
    kept = list(families)
    totals = dict.fromkeys(COUNTS, 0.0)
    for name, (family_name, wanted) in COUNTS.items():
        for family in kept:
            if family.name != family_name:
                continue
            for sample in family.samples:
                if sample.name.endswith("_total") and all(
                    sample.labels.get(k) == v for k, v in wanted.items()
                ):
                    totals[name] += sample.value
    return totals, kept


@dataclass
class EmfReporter:
    service: str
    families: Callable[[], Iterable[Metric]]
    _last: dict[str, float] = field(default_factory=dict)

    def document(self, now_ms: int | None = None) -> dict[str, Any]:
        """One EMF document: counts since the previous one, and the served version's drift."""
        totals, families = _totals(self.families())
        values: dict[str, Any] = {}
        for name, total in totals.items():
            previous = self._last.get(name, 0.0)
            values[name] = total - previous if total >= previous else total  # restarted
        self._last = totals
        for name, family_name in LEVELS.items():
            samples = [s for f in families if f.name == family_name for s in f.samples]
            if samples:
                values[name] = sum(sample.value for sample in samples)
        properties: dict[str, Any] = {}
        status = drift_status(families)
        if status is not None:
            values["DriftLiveRows"] = status.live_rows
        # PSI over a few rows (just after a deploy or a reload) is noise, not drift: leave it out.
        if status is not None and status.live_rows >= MIN_LIVE_ROWS:
            inputs = {k: v for k, v in status.psi.items() if k != SCORE and v is not None}
            if status.psi.get(SCORE) is not None:
                values["ScorePSI"] = status.psi[SCORE]
            if inputs:
                feature = max(inputs, key=lambda k: inputs[k])
                values["MaxInputPSI"] = inputs[feature]
                properties["MaxInputPSIFeature"] = feature
        units = {"ScorePSI": "None", "MaxInputPSI": "None"}
        return {
            "_aws": {
                "Timestamp": int(time.time() * 1000) if now_ms is None else now_ms,
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Service"]],
                        "Metrics": [
                            {"Name": name, "Unit": units.get(name, "Count")} for name in values
                        ],
                    }
                ],
            },
            "Service": self.service,
            **values,
            **properties,
        }


def emf_logger() -> logging.Logger:
    """Raw JSON lines on stdout: an EMF document must be the whole log event."""
    logger = logging.getLogger("fraud.emf")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def start_emf_thread(service: str, interval_s: float) -> threading.Event:
    """In the Gunicorn master: write a document every `interval_s`; set the event to stop."""
    reporter = EmfReporter(service, read_worker_families)
    logger = emf_logger()
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_s):
            try:
                logger.info(orjson.dumps(reporter.document()).decode())
            except TORN_READ_ERRORS as exc:
                # A file still torn after every attempt: say so and go on. An escaped error
                # would end the thread, and with it the task's metrics and alarms, silently.
                logger.warning(orjson.dumps({"event": "emf_failed", "error": repr(exc)}).decode())

    threading.Thread(target=run, name="emf", daemon=True).start()
    return stop
