"""A bundle's manifest: what it holds and vouches for, and the one error a refused bundle raises.

The manifest names every file with its sha256 and size, the library versions it was built
with, the training data, parameters, metrics, the serving kind, and canary rows with the
probabilities scikit-learn gave them. It is read as untrusted JSON and signed
(`ml.runtime.signing`); `ml.runtime.bundle` verifies the rest against it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ml.runtime.untrusted_json import NotJsonObject, parse_object

FORMAT_VERSION = 2
MIGRATE_HINT = "run `fraudctl migrate --store URI` (training side) to convert and sign it"


# Every `BundleError.reason`: the service counts refusals by these, each created at 0 so
# that an alert on its increase fires at the first refusal.
REFUSAL_REASONS = (
    "unsigned",
    "untrusted_key",
    "bad_signature",
    "checksum_mismatch",
    "invalid_manifest",
    "needs_migration",
    "missing_file",
    "malformed_serving_form",
    "canary_mismatch",
    "explanation_mismatch",
    "unreadable",
)


class BundleError(Exception):
    """A bundle that must not be used. `reason` is a stable code (`REFUSAL_REASONS`), the
    message says why."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Manifest:
    version: str
    created_at: str
    model_family: str
    threshold: float
    feature_names: list[str]
    files: dict[str, dict[str, Any]]  # name -> {"sha256": ..., "bytes": ...}
    runtime: dict[str, str]  # python, scikit-learn, numpy, joblib at build time
    training_data: dict[str, Any]  # sha256, rows, frauds, prevalence, path
    params: dict[str, Any]
    metrics: dict[str, Any]  # {"validation": {...}, "test": {...}}
    canary: dict[str, list[Any]]  # {"rows": [[30 floats]...], "fraud_probability": [...]}
    serving: dict[str, str]  # {"model_kind": "tree_ensemble" | "linear"}
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    prevalence: float | None = None  # the fraud rate the threshold and metrics are tuned for
    training_rows: dict[str, Any] | None = None  # fingerprint of the rows trained on
    # Bins of the training rows' inputs and scores (`ml.runtime.drift`); None before drift
    # monitoring: such bundles serve, unmonitored.
    drift_reference: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = parse_object(data)
        except NotJsonObject as exc:
            raise BundleError("invalid_manifest", f"manifest.json is not valid: {exc}") from None
        found = raw.get("format_version")
        if found == 1:
            raise BundleError(
                "needs_migration",
                f"bundle {raw.get('version')} was made before pickle-free, signed bundles "
                f"(format 1): {MIGRATE_HINT}",
            )
        if found != FORMAT_VERSION:
            raise BundleError(
                "invalid_manifest",
                f"manifest format_version is {found!r}, this code reads {FORMAT_VERSION}",
            )
        try:
            return cls(**raw)
        except TypeError as exc:
            raise BundleError("invalid_manifest", f"manifest.json is not valid: {exc}") from None

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "created_at": self.created_at,
            "model_family": self.model_family,
            "threshold": self.threshold,
            "prevalence": self.prevalence,
            "feature_names": self.feature_names,
            "metrics": self.metrics,
            "training_data": self.training_data,
            "runtime": self.runtime,
            "files": self.files,
        }
