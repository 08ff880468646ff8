"""Build a bundle from a fitted model: the training side of `ml.runtime.bundle`.

Serialises model and preprocessor, records what produced them and what they must score on
their canary rows, and writes the manifest last, since it vouches for the other files.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from ml.runtime.bundle import Manifest, runtime_versions, sha256_hex
from ml.runtime.layout import BUNDLE_FILES, MANIFEST_FILE, MODEL_FILE, PREPROCESSOR_FILE
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
    created_at: datetime | None = None,
) -> dict[str, bytes]:
    """Serialise a fitted model into bundle files, manifest last. Nothing touches disk."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    artifacts = {MODEL_FILE: _dump(model), PREPROCESSOR_FILE: _dump(preprocessor)}
    created = (created_at or datetime.now(UTC)).replace(microsecond=0)
    content_id = sha256_hex(b"".join(artifacts.values()) + repr(threshold).encode())[:10]
    canary = np.asarray(canary_rows, dtype=np.float64)
    expected = model.predict_proba(preprocessor.transform(canary))[:, 1]
    manifest = Manifest(
        version=f"{created.strftime('%Y%m%dT%H%M%SZ')}-{content_id}",
        created_at=created.isoformat(),
        model_family=model_family,
        threshold=float(threshold),
        feature_names=list(FEATURE_NAMES),
        files={n: {"sha256": sha256_hex(b), "bytes": len(b)} for n, b in artifacts.items()},
        runtime=runtime_versions(),
        training_data=training_data,
        params=params,
        metrics=metrics,
        canary={"rows": canary.tolist(), "fraud_probability": expected.tolist()},
        prevalence=prevalence,
        training_rows=training_rows,
    )
    return {**artifacts, MANIFEST_FILE: manifest.to_json()}


def write_bundle(directory: Path, files: Mapping[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:  # manifest last: it vouches for the rest
        (directory / name).write_bytes(files[name])
