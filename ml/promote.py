"""Compare-and-promote: a candidate replaces production only when it scores a better F1 than
production on the same evaluation rows, at the configured prevalence, each at its own
threshold, and only if production has not changed while we were deciding.

    1. verify the candidate bundle (checksums, library versions, canary rows)
    2. read production.json and remember its ETag
    3. read the evaluation data; load and verify the production bundle
    4. refuse evaluation rows that either model was trained on (beyond a small tolerance)
    5. score both on the evaluation data, metrics weighted to the prevalence; decide
    6. upload the candidate to models/<version>/ (create-only), then compare-and-swap
       production.json against the ETag read in 2; record the change in history/. A decision
       to keep production is recorded in history/ too.

Metrics saved at training time are never used for the decision: they came from other data.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml.data import Dataset, load_dataset
from ml.errors import PromotionError
from ml.evaluate import DEFAULT_PREVALENCE, classification_metrics
from ml.fingerprint import count_fingerprinted, row_hashes
from ml.paired import PairedF1, paired_f1
from ml.runtime.bundle import ModelBundle, load_bundle, load_version, read_bundle_dir
from ml.runtime.history import record_history
from ml.runtime.store import ArtifactStore, Pointer, PointerConflict, utc_now
from ml.runtime.versions import publish_version
from ml.settings import load_training_settings
from ml.signing import sign_version, signing_key_from_env


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
    prevalence: float
    overlap: list[dict[str, Any]]
    allow_overlap: bool
    max_prauc_drop: float | None
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
    explicit = load_training_settings().promoted_by
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


# Evaluation rows a model was trained on may make up at most this share before the evaluation
# is refused: exact matches by chance are rare, any more means the data was reused.
MAX_OVERLAP_FRACTION = 0.005


def evaluate_bundle(
    bundle: ModelBundle, data: Dataset, prevalence: float = DEFAULT_PREVALENCE
) -> Evaluated:
    scores = bundle.score(data.X)
    metrics = classification_metrics(data.y, scores, bundle.threshold, prevalence)
    return Evaluated(bundle, scores, metrics)


@dataclass(frozen=True)
class Overlap:
    version: str
    rows: int | None  # None: the bundle predates training-row fingerprints

    def describe(self, n_rows: int) -> str:
        if self.rows is None:
            return f"{self.version}: unknown (made before training-row fingerprints)"
        return f"{self.version}: {self.rows} of {n_rows} rows ({self.rows / n_rows:.2%})"


def check_overlap(
    bundles: list[ModelBundle], data: Dataset, *, allow: bool
) -> list[dict[str, Any]]:
    """Refuse evaluation rows the models were trained on, naming how many, unless `allow`."""
    hashes = row_hashes(data.X)  # once, whatever the number of models
    overlaps = [
        Overlap(
            b.version,
            None
            if b.manifest.training_rows is None
            else count_fingerprinted(hashes, b.manifest.training_rows),
        )
        for b in bundles
    ]
    limit = MAX_OVERLAP_FRACTION * data.n_rows
    too_many = [o for o in overlaps if o.rows is not None and o.rows > limit]
    if too_many and not allow:
        named = "; ".join(o.describe(data.n_rows) for o in too_many)
        raise PromotionError(
            f"evaluation data {data.path} overlaps the rows a model was trained on ({named}; "
            f"tolerance {MAX_OVERLAP_FRACTION:.1%}): metrics there flatter the model. Use rows "
            "neither model trained on, or --allow-overlap to record that you chose not to"
        )
    return [{"version": o.version, "rows": o.rows} for o in overlaps]


def decide(
    candidate: Evaluated,
    production: Evaluated | None,
    *,
    min_delta: float,
    force: bool,
    max_prauc_drop: float | None = None,
    paired: PairedF1 | None = None,
    confidence: float = 0.9,
) -> tuple[bool, str, str]:
    """(promote, action, reason); `paired` puts the difference's interval in the reason."""
    if production is None:
        return True, "promote", "no production model yet: the first candidate is promoted"
    if candidate.bundle.manifest_sha256 == production.bundle.manifest_sha256:
        return False, "keep", f"the candidate is already production ({production.bundle.version})"
    new, old = candidate.metrics["f1"], production.metrics["f1"]
    at = f"at prevalence {candidate.metrics['prevalence']:g}"
    comparison = (
        f"candidate F1 {new:.4f} vs production F1 {old:.4f} {at} (min delta {min_delta:+g}"
        + (f"; {paired.describe()})" if paired else ")")
    )
    if force:
        return True, "force-promote", f"forced: {comparison}"
    if max_prauc_drop is not None:
        drop = production.metrics["pr_auc"] - candidate.metrics["pr_auc"]
        if drop > max_prauc_drop:
            return (
                False,
                "keep",
                f"{comparison}; PR-AUC drops by {drop:.4f} (candidate "
                f"{candidate.metrics['pr_auc']:.4f}, production {production.metrics['pr_auc']:.4f}"
                f"), more than --max-prauc-drop {max_prauc_drop:g}: production kept",
            )
    if new > old + min_delta and paired is not None and paired.share_above < confidence:
        share = f"{paired.share_above:.0%} of the resamples, under --confidence {confidence:.0%}"
        return False, "keep", f"{comparison}: better in only {share}: production kept"
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
    confidence: float = 0.9,
    force: bool = False,
    dry_run: bool = False,
    promoted_by: str | None = None,
    prevalence: float = DEFAULT_PREVALENCE,
    allow_overlap: bool = False,
    max_prauc_drop: float | None = None,
) -> PromotionResult:
    # The key first: a promotion that could not sign what it makes live must not start.
    signing_key = None if dry_run else signing_key_from_env()
    candidate_files = read_bundle_dir(candidate_dir)
    candidate_bundle = load_bundle(candidate_files)
    state = store.current_pointer()  # the ETag the final compare-and-swap is made against
    data = load_dataset(data_path)  # both classes required: F1 is undefined otherwise
    production_bundle = None
    if state.pointer is not None:
        production_bundle = load_version(
            store, state.pointer.version, expected_manifest_sha256=state.pointer.manifest_sha256
        )
    bundles = [candidate_bundle] + ([production_bundle] if production_bundle else [])
    overlap = check_overlap(bundles, data, allow=allow_overlap)
    production = evaluate_bundle(production_bundle, data, prevalence) if production_bundle else None
    candidate = evaluate_bundle(candidate_bundle, data, prevalence)
    paired = None
    if production is not None:
        candidate_flags = candidate.scores >= candidate.bundle.threshold
        production_flags = production.scores >= production.bundle.threshold
        paired = paired_f1(data.y, candidate_flags, production_flags, prevalence, min_delta)
    go, action, reason = decide(
        candidate, production, min_delta=min_delta, force=force,
        max_prauc_drop=max_prauc_drop, paired=paired, confidence=confidence,
    )  # fmt: skip
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
        prevalence=prevalence,
        overlap=overlap,
        allow_overlap=allow_overlap,
        max_prauc_drop=max_prauc_drop,
    )
    entry = Pointer(
        version=candidate_bundle.version,
        manifest_sha256=candidate_bundle.manifest_sha256,
        previous_version=state.pointer.version if state.pointer else None,
        promoted_at=utc_now(),
        promoted_by=promoted_by or who(),
        action=action,
        details={
            "reason": reason,
            "prevalence": prevalence,
            "candidate_f1": candidate.metrics["f1"],
            "production_f1": production.metrics["f1"] if production else None,
            "candidate_pr_auc": candidate.metrics["pr_auc"],
            "production_pr_auc": production.metrics["pr_auc"] if production else None,
            "min_delta": min_delta,
            "f1_difference": paired.to_dict() if paired else None,
            "confidence": confidence,
            "max_prauc_drop": max_prauc_drop,
            "allow_overlap": allow_overlap,
            "training_overlap": overlap,
            "evaluation_data_sha256": data.sha256,
            "evaluation_rows": data.n_rows,
        },
    )
    if dry_run:
        return PromotionResult(decision, candidate, production, data.y)
    if not go:
        record_history(store, entry)  # a kept production is part of the story too
        return PromotionResult(decision, candidate, production, data.y)

    version = candidate_bundle.version
    publish_version(store, version, candidate_files)
    assert signing_key is not None  # loaded above unless dry_run
    entry.details["signed_by"] = sign_version(
        store, version, signing_key, candidate_bundle.manifest_sha256
    )
    pointer = entry
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
