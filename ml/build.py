"""Build a bundle from a fitted model: the training side of `ml.runtime.bundle`.

Exports model and preprocessor to their serving form (numbers and JSON, no pickle) and proves
it scores as scikit-learn does, on the canary rows and on rows with extreme and missing values;
keeps joblib copies for audit; records what produced them and what they must score on their
canary rows, and writes the manifest last, since it vouches for the other files.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn

from ml.families import family
from ml.runtime.bundle import CANARY_TOLERANCE, runtime_versions, sha256_hex
from ml.runtime.drift import DriftReference
from ml.runtime.layout import (
    AUDIT_MODEL_FILE,
    AUDIT_PREPROCESSOR_FILE,
    BUNDLE_FILES,
    MANIFEST_FILE,
    MODEL_FILE,
    PREPROCESSOR_FILE,
)
from ml.runtime.manifest import Manifest
from ml.runtime.schema import FEATURE_NAMES


def _dump(obj: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def build_bundle_files(
    *,
    model: Any,
    preprocessor: Any,
    threshold: float,
    model_family: str,
    training_data: dict[str, Any],
    params: dict[str, Any],
    metrics: dict[str, Any],
    canary_rows: np.ndarray,
    prevalence: float | None = None,
    training_rows: dict[str, Any] | None = None,
    drift_reference: DriftReference | None = None,
    created_at: datetime | None = None,
) -> dict[str, bytes]:
    """Serialise a fitted model into bundle files, manifest last. Nothing touches disk."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    serving_preprocessor, serving = preprocessor.serving_form(), family(model_family).export(model)
    canary = np.asarray(canary_rows, dtype=np.float64)
    _prove_equivalent(model, preprocessor, serving_preprocessor, serving, canary)
    artifacts = {
        AUDIT_MODEL_FILE: _dump(model),
        AUDIT_PREPROCESSOR_FILE: _dump(preprocessor),
        PREPROCESSOR_FILE: serving_preprocessor.to_json(),
        MODEL_FILE: serving.to_npz(),
    }
    created = (created_at or datetime.now(UTC)).replace(microsecond=0)
    content_id = sha256_hex(b"".join(artifacts.values()) + repr(threshold).encode())[:10]
    expected = model.predict_proba(preprocessor.transform(canary))[:, 1]
    manifest = Manifest(
        version=f"{created.strftime('%Y%m%dT%H%M%SZ')}-{content_id}",
        created_at=created.isoformat(),
        model_family=model_family,
        threshold=float(threshold),
        feature_names=list(FEATURE_NAMES),
        files={n: {"sha256": sha256_hex(b), "bytes": len(b)} for n, b in artifacts.items()},
        runtime=runtime_versions()
        | {"scikit-learn": sklearn.__version__, "joblib": joblib.__version__},
        training_data=training_data,
        params=params,
        metrics=metrics,
        canary={"rows": canary.tolist(), "fraud_probability": expected.tolist()},
        serving={"model_kind": serving.kind},
        prevalence=prevalence,
        training_rows=training_rows,
        drift_reference=None if drift_reference is None else drift_reference.to_json(),
    )
    return {**artifacts, MANIFEST_FILE: manifest.to_json()}


def _prove_equivalent(
    model: Any, preprocessor: Any, serving_preprocessor: Any, serving: Any, canary: np.ndarray
) -> None:
    """The serving form must give scikit-learn's probabilities, within the canary tolerance, on
    the canary rows, the same rows scaled to extremes, and (kinds that route them: scikit-learn's
    linear model refuses them) rows with missing values. The API refuses missing values anyway."""
    extreme = np.vstack([canary * 1e3, canary * -1e3, np.full((1, canary.shape[1]), 1e12)])
    checks = [("canary", canary), ("extreme", extreme)]
    if serving.handles_missing:
        missing = canary.copy()
        missing[:, 1::3] = np.nan
        checks.append(("missing", missing))
    for name, rows in checks:
        expected = model.predict_proba(preprocessor.transform(rows))[:, 1]
        actual = serving.predict_proba(serving_preprocessor.transform(rows))
        diff = float(np.max(np.abs(actual - expected)))
        if not diff <= CANARY_TOLERANCE:
            raise ValueError(
                f"the serving form differs from scikit-learn on {name} rows by {diff:.3g}"
            )


def write_bundle(directory: Path, files: Mapping[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:  # manifest last: it vouches for the rest
        (directory / name).write_bytes(files[name])
