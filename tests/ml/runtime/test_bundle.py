"""Bundles verified on load: checksums, the manifest against the pointer, canary rows through
every scoring path, and the refusal reasons the service counts."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn

from ml.build import write_bundle
from ml.data import Dataset
from ml.runtime.bundle import load_bundle, load_bundle_dir, read_bundle_dir, sha256_hex
from ml.runtime.layout import (
    AUDIT_MODEL_FILE,
    AUDIT_PREPROCESSOR_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
)
from ml.runtime.manifest import REFUSAL_REASONS, BundleError, Manifest
from ml.runtime.schema import FEATURE_NAMES
from ml.testing.processes import REPO
from tests.support.bundle_edits import with_manifest


def sklearn_proba(files: dict[str, bytes], X: np.ndarray) -> np.ndarray:
    """What scikit-learn itself gives, from the bundle's audit copies (training side only)."""
    model = joblib.load(io.BytesIO(files[AUDIT_MODEL_FILE]))
    preprocessor = joblib.load(io.BytesIO(files[AUDIT_PREPROCESSOR_FILE]))
    probabilities: np.ndarray = model.predict_proba(preprocessor.transform(X))[:, 1]
    return probabilities


def test_manifest_describes_the_bundle(bundle_files: dict[str, bytes]) -> None:
    manifest = Manifest.from_json(bundle_files[MANIFEST_FILE])
    assert manifest.feature_names == list(FEATURE_NAMES)
    assert 0.0 < manifest.threshold < 1.0
    assert manifest.runtime["scikit-learn"] == sklearn.__version__
    assert {"python", "numpy", "joblib"} <= manifest.runtime.keys()
    assert manifest.files[MODEL_FILE]["sha256"] == sha256_hex(bundle_files[MODEL_FILE])
    assert manifest.training_data["rows"] > 0
    assert manifest.training_data["frauds"] > 0
    assert manifest.params["seed"] == 1
    assert {"validation", "test"} == manifest.metrics.keys()
    assert len(manifest.canary["rows"]) == len(manifest.canary["fraud_probability"]) >= 2
    assert manifest.version.endswith(sha256_hex(b"")[:0])
    assert "T" in manifest.version


def test_round_trip_through_a_directory_scores_like_the_model(
    tmp_path: Path, bundle_files: dict[str, bytes], small_dataset: Dataset
) -> None:
    write_bundle(tmp_path / "b", bundle_files)
    assert read_bundle_dir(tmp_path / "b") == bundle_files
    bundle = load_bundle_dir(tmp_path / "b")
    X = small_dataset.X[:500]
    expected = sklearn_proba(bundle_files, X)
    # The serving form, for a batch of 500, 10 rows and one row, scores as scikit-learn does.
    np.testing.assert_allclose(bundle.score(X), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bundle.score(X[:10]), expected[:10], rtol=0, atol=1e-12)
    np.testing.assert_allclose(bundle.score(X[:1]), expected[:1], rtol=0, atol=1e-12)
    assert bundle.model.kind == "tree_ensemble"


def test_tampered_model_file_is_refused(bundle_files: dict[str, bytes]) -> None:
    tampered = {**bundle_files, MODEL_FILE: bundle_files[MODEL_FILE] + b"\0"}
    with pytest.raises(BundleError, match=r"model\.npz has sha256") as caught:
        load_bundle(tampered)
    assert caught.value.reason == "checksum_mismatch"


def test_manifest_not_matching_the_pointer_is_refused(bundle_files: dict[str, bytes]) -> None:
    with pytest.raises(BundleError, match="the pointer expects") as caught:
        load_bundle(bundle_files, expected_manifest_sha256="0" * 64)
    assert caught.value.reason == "checksum_mismatch"


def _manifest_with(files: dict[str, bytes], key: str, change: Any) -> dict[str, bytes]:
    manifest = json.loads(files[MANIFEST_FILE])
    return with_manifest(files, **{key: change(manifest[key])})


def _later_canary(canary: dict[str, Any]) -> dict[str, Any]:
    canary["fraud_probability"][0] += 1e-6
    return canary


@pytest.mark.parametrize(
    ("key", "change", "reason", "message"),
    [
        (
            "serving",
            lambda _: {"model_kind": "xgboost"},
            "malformed_serving_form",
            "unknown model kind 'xgboost'",
        ),
        ("format_version", lambda _: 1, "needs_migration", "fraudctl migrate"),
        ("canary", _later_canary, "canary_mismatch", r"differ from training time by 1e-06"),
        ("format_version", lambda _: 99, "invalid_manifest", "format_version is 99"),
        (
            "feature_names",
            lambda names: names[::-1],
            "invalid_manifest",
            "expects features",
        ),
    ],
    ids=["unknown-kind", "format-1", "canary-mismatch", "format-version", "feature-order"],
)
def test_a_manifest_that_does_not_hold_is_refused(
    bundle_files: dict[str, bytes],
    key: str,
    change: Callable[[Any], Any],
    reason: str,
    message: str,
) -> None:
    # The manifest's own checksum is not checked here (no pointer): the content checks are.
    with pytest.raises(BundleError, match=message) as caught:
        load_bundle(_manifest_with(bundle_files, key, change))
    assert caught.value.reason == reason


def test_canary_difference_within_tolerance_is_accepted(bundle_files: dict[str, bytes]) -> None:
    manifest = json.loads(bundle_files[MANIFEST_FILE])
    canary = manifest["canary"]
    canary["fraud_probability"][0] += 1e-12
    load_bundle(with_manifest(bundle_files, canary=canary))


def test_missing_file_is_refused(tmp_path: Path, bundle_files: dict[str, bytes]) -> None:
    write_bundle(tmp_path, bundle_files)
    (tmp_path / MODEL_FILE).unlink()
    with pytest.raises(BundleError, match=r"has no model\.npz"):
        load_bundle_dir(tmp_path)


def test_garbage_manifest_is_refused(bundle_files: dict[str, bytes]) -> None:
    with pytest.raises(BundleError, match=r"manifest\.json is not valid") as caught:
        load_bundle({**bundle_files, MANIFEST_FILE: b"{not json"})
    assert caught.value.reason == "invalid_manifest"


def test_linear_bundle_scores_as_scikit_learn(
    other_bundle_files: dict[str, bytes], small_dataset: Dataset
) -> None:
    bundle = load_bundle(other_bundle_files)
    assert bundle.model.kind == "linear"
    assert bundle.manifest.model_family == "logreg"
    X = small_dataset.X[:300]
    expected = sklearn_proba(other_bundle_files, X)
    np.testing.assert_allclose(bundle.score(X), expected, rtol=0, atol=1e-12)


def test_rows_with_missing_values_score_like_scikit_learn(
    bundle_files: dict[str, bytes], small_dataset: Dataset
) -> None:
    """A NaN goes where scikit-learn sends it, per node (the API refuses NaN; the runtime
    would still score it right)."""
    bundle = load_bundle(bundle_files)
    X = small_dataset.X[:20].copy()
    X[::3, 5] = np.nan
    X[1::4, 29] = np.nan
    expected = sklearn_proba(bundle_files, X)
    np.testing.assert_allclose(bundle.score(X), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bundle.score(X[:1]), expected[:1], rtol=0, atol=1e-12)


def test_every_refusal_reason_raised_is_one_the_service_counts_from_the_start() -> None:
    """The service creates fraud_model_refusals_total at 0 for each of REFUSAL_REASONS; a
    reason raised but missing there would appear only at its first refusal, where increase()
    alerts cannot see it."""
    raised = set()
    for source in [*(REPO / "ml" / "runtime").glob("*.py"), *(REPO / "service").glob("*.py")]:
        raised |= set(
            re.findall(r'(?:BundleError|SignatureError)\(\s*"([a-z_]+)"', source.read_text())
        )
    assert raised, "no raise site found: the pattern no longer matches the code"
    assert raised <= set(REFUSAL_REASONS), raised - set(REFUSAL_REASONS)
