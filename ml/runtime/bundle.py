"""The model bundle as the service reads it: verified before it is used.

A bundle is a set of files: model, preprocessor and a manifest that describes and guards them.
`manifest.json` names every other file with its sha256, the library
versions it was built with, the training data fingerprint, parameters, metrics, and canary rows
with the probabilities scikit-learn gave them. Loading checks all of it before a bundle is used:
a bundle that loads is one that scores exactly as it did when it was trained.

Building a bundle is training's job (`ml.build`); this module only reads and verifies.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn

from ml.runtime import features
from ml.runtime.layout import ARTIFACT_FILES, MANIFEST_FILE, MODEL_FILE, PREPROCESSOR_FILE
from ml.runtime.schema import FEATURE_NAMES
from ml.runtime.scoring import MAX_FAST_ROWS, FlatTreeEnsemble, fast_scorer_for
from ml.runtime.store import ArtifactStore, fetch_version

# Bundles made before the serving runtime had its own package pickled the preprocessor as
# `ml.features.TransactionFeatures`; this alias lets them unpickle where only the runtime is.
sys.modules.setdefault("ml.features", features)

FORMAT_VERSION = 1
CANARY_TOLERANCE = 1e-9


class BundleError(Exception):
    """A bundle that must not be used. `reason` is a stable code, the message says why."""

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
    runtime: dict[str, str]  # python, scikit-learn, numpy, joblib
    training_data: dict[str, Any]  # sha256, rows, frauds, prevalence, path
    params: dict[str, Any]
    metrics: dict[str, Any]  # {"validation": {...}, "test": {...}}
    canary: dict[str, list[Any]]  # {"rows": [[30 floats]...], "fraud_probability": [...]}
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    # Added later; bundles made before them load with None.
    prevalence: float | None = None  # the fraud rate the threshold and metrics are tuned for
    training_rows: dict[str, Any] | None = (
        None  # fingerprint of the rows trained on (ml.fingerprint)
    )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            if raw.get("format_version") != FORMAT_VERSION:
                raise BundleError(
                    "invalid_manifest",
                    f"manifest format_version is {raw.get('format_version')!r}, "
                    f"this code reads {FORMAT_VERSION}",
                )
            return cls(**raw)
        except (ValueError, TypeError, AttributeError) as exc:
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


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """A verified, immutable bundle ready to score. Swap whole bundles, never their parts."""

    manifest: Manifest
    manifest_sha256: str
    preprocessor: Any
    model: Any
    fast_scorer: FlatTreeEnsemble | None

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    def score(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities for rows of raw features in `FEATURE_NAMES` order."""
        features = self.preprocessor.transform(X)
        if (
            self.fast_scorer is not None
            and features.shape[0] <= MAX_FAST_ROWS
            and not np.isnan(features).any()
        ):
            return self.fast_scorer.predict_fraud_proba(features)
        return np.asarray(self.model.predict_proba(features)[:, 1], dtype=np.float64)


def runtime_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
    }


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bundle_dir(directory: Path) -> dict[str, bytes]:
    if not directory.is_dir():
        raise BundleError("missing_file", f"bundle directory {directory} does not exist")
    files = {}
    for name in (MANIFEST_FILE, *ARTIFACT_FILES):
        try:
            files[name] = (directory / name).read_bytes()
        except FileNotFoundError:
            raise BundleError("missing_file", f"bundle {directory} has no {name}") from None
    return files


def load_bundle_dir(directory: Path) -> ModelBundle:
    return load_bundle(read_bundle_dir(directory))


def load_version(
    store: ArtifactStore, version: str, *, expected_manifest_sha256: str | None = None
) -> ModelBundle:
    """Fetch `models/<version>/` from the store and verify it like any bundle. Pass the
    manifest sha256 that production.json names when following the pointer."""
    return load_bundle(
        fetch_version(store, version), expected_manifest_sha256=expected_manifest_sha256
    )


def load_bundle(
    files: Mapping[str, bytes], *, expected_manifest_sha256: str | None = None
) -> ModelBundle:
    """Verify and load a bundle: manifest checksum (when the caller knows it), file checksums,
    scikit-learn minor version, then canary rows. Raises `BundleError` saying why."""
    if MANIFEST_FILE not in files:
        raise BundleError("missing_file", "the bundle has no manifest.json")
    manifest_bytes = files[MANIFEST_FILE]
    manifest_sha = sha256_hex(manifest_bytes)
    if expected_manifest_sha256 is not None and manifest_sha != expected_manifest_sha256:
        raise BundleError(
            "checksum_mismatch",
            f"manifest.json has sha256 {manifest_sha}, the pointer expects "
            f"{expected_manifest_sha256}",
        )
    manifest = Manifest.from_json(manifest_bytes)
    _verify_files(manifest, files)
    _verify_runtime(manifest)
    if manifest.feature_names != list(FEATURE_NAMES):
        raise BundleError(
            "invalid_manifest",
            f"bundle {manifest.version} expects features {manifest.feature_names}, "
            f"this code provides {list(FEATURE_NAMES)}",
        )
    try:
        model = joblib.load(io.BytesIO(files[MODEL_FILE]))
        preprocessor = joblib.load(io.BytesIO(files[PREPROCESSOR_FILE]))
    except (ValueError, EOFError, AttributeError, ImportError, TypeError) as exc:
        raise BundleError(
            "unreadable", f"bundle {manifest.version}: cannot unpickle: {exc}"
        ) from exc
    bundle = ModelBundle(
        manifest=manifest,
        manifest_sha256=manifest_sha,
        preprocessor=preprocessor,
        model=model,
        fast_scorer=fast_scorer_for(model),
    )
    _verify_canary(bundle)
    return bundle


def _verify_files(manifest: Manifest, files: Mapping[str, bytes]) -> None:
    for name in ARTIFACT_FILES:
        if name not in manifest.files:
            raise BundleError("invalid_manifest", f"manifest does not list {name}")
        if name not in files:
            raise BundleError("missing_file", f"bundle {manifest.version} has no {name}")
        actual = sha256_hex(files[name])
        expected = manifest.files[name]["sha256"]
        if actual != expected:
            raise BundleError(
                "checksum_mismatch",
                f"bundle {manifest.version}: {name} has sha256 {actual}, manifest says {expected}",
            )


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _verify_runtime(manifest: Manifest) -> None:
    built = manifest.runtime.get("scikit-learn", "unknown")
    if _minor(built) != _minor(sklearn.__version__):
        raise BundleError(
            "incompatible_runtime",
            f"bundle {manifest.version} was built with scikit-learn {built}; this process runs "
            f"{sklearn.__version__} (the minor versions must match)",
        )


def _verify_canary(bundle: ModelBundle) -> None:
    rows = np.asarray(bundle.manifest.canary["rows"], dtype=np.float64)
    expected = np.asarray(bundle.manifest.canary["fraud_probability"], dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[0] != expected.shape[0]:
        raise BundleError("invalid_manifest", "manifest canary rows are missing or malformed")
    # Every scoring path the service can take must reproduce training-time probabilities.
    paths = {
        "batch": bundle.score(rows),
        "single": np.array([bundle.score(r[None])[0] for r in rows]),
    }
    try:
        features = bundle.preprocessor.transform(rows)
        paths["scikit-learn"] = bundle.model.predict_proba(features)[:, 1]
    except (ValueError, AttributeError, TypeError) as exc:
        raise BundleError("canary_mismatch", f"canary rows cannot be scored: {exc}") from exc
    for path, actual in paths.items():
        diff = float(np.max(np.abs(actual - expected)))
        if not diff <= CANARY_TOLERANCE:
            raise BundleError(
                "canary_mismatch",
                f"bundle {bundle.version}: canary rows scored via {path} differ from training "
                f"time by {diff:.3g} (tolerance {CANARY_TOLERANCE:g})",
            )
