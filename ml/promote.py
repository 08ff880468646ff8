"""Compare-and-promote: a candidate replaces production only when it scores a better F1 than
production on the same evaluation data, each at its own threshold, and only if production has
not changed while we were deciding.

    1. verify the candidate bundle (checksums, library versions, canary rows)
    2. read production.json and remember its ETag
    3. read the evaluation data; load and verify the production bundle
    4. score both on the evaluation data; decide
    5. upload the candidate to models/<version>/ (create-only), then compare-and-swap
       production.json against the ETag read in 2; record the change in history/

Metrics saved at training time are never used for the decision: they came from other data.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml.data import Dataset, load_dataset
from ml.errors import PromotionError
from ml.evaluate import classification_metrics
from ml.runtime.bundle import ModelBundle, load_bundle, load_version, read_bundle_dir
from ml.runtime.store import (
    ArtifactStore,
    Pointer,
    PointerConflict,
    publish_version,
    record_history,
    utc_now,
)


@dataclass
class Evaluated:
    bundle: ModelBundle
    scores: np.ndarray
    metrics: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.bundle.version,
            "model_family": self.bundle.manifest.model_family,
            "metrics": self.metrics,
        }


@dataclass
class Decision:
    promote: bool
    action: str  # promote | force-promote | keep
    reason: str
    candidate: dict[str, Any]
    production: dict[str, Any] | None
    data: dict[str, Any]
    min_delta: float
    forced: bool
    dry_run: bool
    store: str
    decided_at: str = field(default_factory=utc_now)
    promoted: bool = False  # true once the pointer names the candidate
    notify: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PromotionResult:
    decision: Decision
    candidate: Evaluated
    production: Evaluated | None
    labels: np.ndarray  # of the evaluation data, for the report


def who() -> str:
    """Who or what is promoting, for the history: CI sets FRAUD_PROMOTED_BY."""
    explicit = os.environ.get("FRAUD_PROMOTED_BY")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def evaluate_bundle(bundle: ModelBundle, data: Dataset) -> Evaluated:
    scores = bundle.score(data.X)
    return Evaluated(bundle, scores, classification_metrics(data.y, scores, bundle.threshold))


def decide(
    candidate: Evaluated, production: Evaluated | None, *, min_delta: float, force: bool
) -> tuple[bool, str, str]:
    """(promote, action, reason)."""
    if production is None:
        return True, "promote", "no production model yet: the first candidate is promoted"
    if candidate.bundle.manifest_sha256 == production.bundle.manifest_sha256:
        return False, "keep", f"the candidate is already production ({production.bundle.version})"
    new, old = candidate.metrics["f1"], production.metrics["f1"]
    comparison = f"candidate F1 {new:.4f} vs production F1 {old:.4f} (min delta {min_delta:+g})"
    if force:
        return True, "force-promote", f"forced: {comparison}"
    if new > old + min_delta:
        action = "promote" if new > old else "force-promote"  # a negative delta let it through
        return (
            True,
            action,
            f"{comparison}: better"
            if new > old
            else (f"{comparison}: not better, promoted deliberately by a negative min delta"),
        )
    return False, "keep", f"{comparison}: not better, production kept"


def promote(
    candidate_dir: Path,
    data_path: Path,
    store: ArtifactStore,
    *,
    min_delta: float = 0.0,
    force: bool = False,
    dry_run: bool = False,
    promoted_by: str | None = None,
) -> PromotionResult:
    candidate_files = read_bundle_dir(candidate_dir)
    candidate_bundle = load_bundle(candidate_files)
    state = store.current_pointer()  # the ETag the final compare-and-swap is made against
    data = load_dataset(data_path)  # both classes required: F1 is undefined otherwise
    production: Evaluated | None = None
    if state.pointer is not None:
        production_bundle = load_version(
            store, state.pointer.version, expected_manifest_sha256=state.pointer.manifest_sha256
        )
        production = evaluate_bundle(production_bundle, data)
    candidate = evaluate_bundle(candidate_bundle, data)
    go, action, reason = decide(candidate, production, min_delta=min_delta, force=force)
    decision = Decision(
        promote=go,
        action=action,
        reason=reason,
        candidate=candidate.summary(),
        production=production.summary() if production else None,
        data=data.fingerprint(),
        min_delta=min_delta,
        forced=force,
        dry_run=dry_run,
        store=store.uri,
    )
    if not go or dry_run:
        return PromotionResult(decision, candidate, production, data.y)

    version = candidate_bundle.version
    publish_version(store, version, candidate_files)
    pointer = Pointer(
        version=version,
        manifest_sha256=candidate_bundle.manifest_sha256,
        previous_version=state.pointer.version if state.pointer else None,
        promoted_at=utc_now(),
        promoted_by=promoted_by or who(),
        action=action,
        details={
            "reason": reason,
            "candidate_f1": candidate.metrics["f1"],
            "production_f1": production.metrics["f1"] if production else None,
            "min_delta": min_delta,
            "evaluation_data_sha256": data.sha256,
            "evaluation_rows": data.n_rows,
        },
    )
    try:
        store.swap_pointer(pointer, expected_etag=state.etag)
    except PointerConflict as exc:
        now = store.current_pointer().pointer
        raise PromotionError(
            f"production changed while this promotion was deciding (it now names "
            f"{now.version if now else 'nothing'}); nothing was promoted. Re-run to compare "
            f"against the new production. ({exc})"
        ) from None
    record_history(store, pointer)
    return PromotionResult(replace(decision, promoted=True), candidate, production, data.y)


def rollback(
    store: ArtifactStore, *, to: str | None = None, promoted_by: str | None = None
) -> Pointer:
    """Point production at an older version (default: the one before the current)."""
    state = store.current_pointer()
    if state.pointer is None:
        raise PromotionError(f"{store.uri} has no production model to roll back")
    target = to or state.pointer.previous_version
    if target is None:
        raise PromotionError(
            f"production {state.pointer.version} has no previous version; name one with --to"
        )
    if target == state.pointer.version:
        raise PromotionError(f"{target} is already production")
    bundle = load_version(store, target)  # never roll back onto a bundle that would not load
    pointer = Pointer(
        version=bundle.version,
        manifest_sha256=bundle.manifest_sha256,
        previous_version=state.pointer.version,
        promoted_at=utc_now(),
        promoted_by=promoted_by or who(),
        action="rollback",
        details={"rolled_back_from": state.pointer.version},
    )
    try:
        store.swap_pointer(pointer, expected_etag=state.etag)
    except PointerConflict:
        raise PromotionError("production changed during the rollback; nothing changed") from None
    record_history(store, pointer)
    return pointer
