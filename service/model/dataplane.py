"""The data plane: everything the service does with a model, without HTTP.

Like MLServer's `DataPlane`: one object scores one row (through the micro-batcher) and many
rows, applies the decision threshold, counts per-prediction metrics, enforces the batch limits
and reloads. Routes authenticate, parse, call it and serialise; nothing here knows a request.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ml.runtime.bundle import Explanation, ExplanationUnavailable, ModelBundle
from ml.runtime.drift import MIN_LIVE_ROWS, PSI_DRIFT, PSI_WATCH
from ml.runtime.history import read_history
from ml.runtime.live_summary import UnreadableSummary, read_latest_summary
from service.errors import InvalidInput, TooLarge, UnsupportedByModel
from service.model.batching import MicroBatcher, score_batch
from service.model.decision_log import DecisionLog, Origin
from service.model.drift import DriftMonitor
from service.model.reasons import top_reasons
from service.model.registry import ModelRegistry, ReloadOutcome
from service.observe.metrics import Metrics


@dataclass(frozen=True)
class Prediction:
    model_version: str
    fraud_probability: float
    is_fraud: bool
    threshold: float
    base_value: float | None = None  # with reasons: log-odds before any input is known
    reasons: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class BatchPredictions:
    model_version: str
    threshold: float
    fraud_probabilities: list[float]
    is_fraud: list[bool]
    base_value: float | None = None
    reasons: list[list[dict[str, Any]]] | None = None


HISTORY_ENTRIES = 20  # what the console shows; `fraudctl history` prints them all

# Explaining costs ~22 us a row in-process (docs/performance.md). Above this many rows (~45 ms)
# it moves to a thread. Not lower: each thread hop left a worker ~15 MB larger (glibc's
# per-thread arena), and a default-sized batch (1,000 rows) stays on the loop for ~25 ms.
EXPLAIN_THREAD_ROWS = 2000

# A batch this large leaves megabytes of freed parse buffers behind (1,000 rows: ~600 KB of JSON
# as ~30,000 Python floats and their lists).
LARGE_BATCH_ROWS = 256


class DataPlane:
    def __init__(
        self,
        registry: ModelRegistry,
        metrics: Metrics,
        *,
        max_batch_rows: int,
        drift_window_s: float = 3600.0,
        decisions: DecisionLog | None = None,
    ) -> None:
        self.registry = registry
        self.decisions = decisions  # None: capture is off
        self._metrics = metrics
        self.max_batch_rows = max_batch_rows
        self.drift = DriftMonitor(metrics, drift_window_s)
        self._batcher = MicroBatcher(registry.require_bundle, on_batch=self._scored_micro_batch)
        # Set by a large batch, read by the app's housekeeping loop (service/app.py), which
        # then gives the batch's freed parse buffers back to the OS soon after, not in ~10 s.
        self.heap_grew = False

    def _scored_micro_batch(
        self, bundle: ModelBundle, rows: np.ndarray, probabilities: np.ndarray
    ) -> None:
        self._metrics.batch_rows.observe(rows.shape[0])
        self.drift.record(bundle, rows, probabilities)

    async def predict(
        self,
        row: list[float],
        threshold: float | None = None,
        explain: int = 0,
        origin: Origin | None = None,
    ) -> Prediction:
        """One row of raw features, scored together with whatever else is waiting; or, asked
        for its `explain` top reasons, scored and explained on its own. With an `origin`, the
        decision goes to the decision log (buffered; in the spool within 0.2 s)."""
        explained = None
        if explain:
            rows = np.array([row], dtype=np.float64)
            bundle, explained = await self._explain(rows)
            probability = float(explained.probabilities[0])
            self.drift.record(bundle, rows, explained.probabilities)  # the batcher records its own
        else:
            probability, bundle = await self._batcher.score_one(row)
        cut = bundle.threshold if threshold is None else threshold
        is_fraud = probability >= cut
        self._metrics.count_prediction(probability, is_fraud)
        if self.decisions is not None and origin is not None:
            self.decisions.record_one(origin, bundle.version, row, probability, cut, is_fraud)
        if explained is None:
            return Prediction(bundle.version, probability, is_fraud, cut)
        reasons = top_reasons(rows, explained, explain)[0]
        return Prediction(bundle.version, probability, is_fraud, cut, explained.base_value, reasons)

    async def _explain(self, rows: np.ndarray) -> tuple[ModelBundle, Explanation]:
        bundle = self.registry.require_bundle()
        try:
            if rows.shape[0] > EXPLAIN_THREAD_ROWS:
                return bundle, await asyncio.to_thread(bundle.explain, rows)
            return bundle, bundle.explain(rows)
        except ExplanationUnavailable as exc:
            raise UnsupportedByModel(str(exc), code="explain_unavailable") from None

    def check_batch_size(self, n_rows: int) -> None:
        """Refuse an empty or oversized batch before any row is looked at."""
        if n_rows == 0:  # a request that does not fit the contract, not one too large
            raise InvalidInput(
                f"transactions is empty: send between 1 and {self.max_batch_rows} rows",
                details=[
                    {
                        "field": "transactions",
                        "problem": f"send between 1 and {self.max_batch_rows} rows",
                        "received": 0,
                    }
                ],
            )
        if n_rows > self.max_batch_rows:
            raise TooLarge(
                f"transactions has {n_rows} rows; the limit is "
                f"FRAUD_MAX_BATCH_ROWS={self.max_batch_rows}"
            )

    async def predict_batch(
        self,
        matrix: np.ndarray,
        threshold: float | None = None,
        explain: int = 0,
        origin: Origin | None = None,
    ) -> BatchPredictions:
        """Many rows (float64, one per row) with one bundle, even if a reload swaps it
        meanwhile; with `explain`, each row's top reasons too; logged as `predict` is."""
        self.check_batch_size(matrix.shape[0])
        if matrix.shape[0] >= LARGE_BATCH_ROWS:
            self.heap_grew = True
        explained = None
        if explain:
            bundle, explained = await self._explain(matrix)
            probabilities = explained.probabilities
        else:
            scored = await score_batch(self.registry.require_bundle, matrix)
            bundle, probabilities = scored.bundle, scored.probabilities
        cut = bundle.threshold if threshold is None else threshold
        flags = probabilities >= cut
        self._metrics.count_predictions(probabilities, flags)
        self.drift.record(bundle, matrix, probabilities)
        if self.decisions is not None and origin is not None:
            self.decisions.record_many(origin, bundle.version, matrix, probabilities, cut, flags)
        return BatchPredictions(
            bundle.version,
            cut,
            probabilities.tolist(),
            flags.tolist(),
            None if explained is None else explained.base_value,
            None if explained is None else top_reasons(matrix, explained, explain),
        )

    def drift_report(self) -> dict[str, Any]:
        """PSI of the served version's inputs and score, over all workers."""
        bundle = self.registry.require_bundle()
        self.drift.flush(bundle)  # this worker's waiting rows count too
        status = self._metrics.drift_status()
        live_rows = status.live_rows if status else 0
        psi = status.psi if status else {}
        if bundle.drift_reference is None:
            state = "unmonitored"
        elif live_rows < MIN_LIVE_ROWS:
            # A level on a few rows is sampling noise (PSI 3-8 on 15 rows looked like an
            # incident): no PSI until the window holds enough.
            state, psi = "collecting", dict.fromkeys(psi)
        else:
            state = "measured"
        return {
            "model_version": bundle.version,
            "monitored": bundle.drift_reference is not None,
            "status": state,
            "live_rows": live_rows,
            "reference_rows": bundle.drift_reference.rows if bundle.drift_reference else None,
            "psi": psi,
            "window_s": self.drift.window_s,
            "levels": {"watch": PSI_WATCH, "drift": PSI_DRIFT},
            "min_live_rows": MIN_LIVE_ROWS,  # fewer: PSI is mostly sampling noise
        }

    async def promotion_history(self, limit: int = HISTORY_ENTRIES) -> dict[str, Any]:
        """The store's latest promotions, rollbacks and migrations, newest first. A record
        that does not parse (anyone who can write the bucket can write one) is counted, not
        shown."""
        return await asyncio.to_thread(self._read_history, limit)

    def _read_history(self, limit: int) -> dict[str, Any]:
        log = read_history(self.registry.store, limit)
        return {"entries": [asdict(entry) for entry in log.entries], "unreadable": log.unreadable}

    async def live_quality(self) -> dict[str, Any]:
        """The newest summary `fraudctl evaluate --live` wrote to the store (the service reads
        it; it never joins the decision log with labels itself)."""
        return await asyncio.to_thread(self._read_live_quality)

    def _read_live_quality(self) -> dict[str, Any]:
        try:
            summary = read_latest_summary(self.registry.store)
        except UnreadableSummary as exc:  # anyone who can write the bucket can write one
            return {"status": "unreadable", "report": None, "problem": str(exc)}
        if summary is None:
            problem = "no live-quality report yet: run `fraudctl evaluate --live` after labels"
            return {"status": "none", "report": None, "problem": problem}
        return {"status": "ready", "report": summary, "problem": None}

    def model_card(self) -> dict[str, Any]:
        bundle = self.registry.require_bundle()
        return bundle.manifest.summary() | {"manifest_sha256": bundle.manifest_sha256}

    def serving(self) -> ModelBundle | None:
        """The bundle being served, or None before the first load."""
        return self.registry.bundle

    async def reload(self) -> ReloadOutcome:
        """Follow production.json now, in every worker. Raises the load failure's cause."""
        return await self.registry.reload("api")
