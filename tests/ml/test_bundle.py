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
    PREPROCESSOR_FILE,
)
from ml.runtime.manifest import REFUSAL_REASONS, BundleError, Manifest
from ml.runtime.schema import FEATURE_NAMES
from tests.support.processes import REPO


def with_manifest(files: dict[str, bytes], **changes: object) -> dict[str, bytes]:
    manifest = json.loads(files[MANIFEST_FILE])
    manifest.update(changes)
    return {**files, MANIFEST_FILE: json.dumps(manifest).encode()}


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


def with_file(files: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """Replace one file and vouch for it in the manifest, as a writer with the means to
    recompute checksums would: what is left to catch it is the content check."""
    manifest = json.loads(files[MANIFEST_FILE])
    manifest["files"][name] = {"sha256": sha256_hex(data), "bytes": len(data)}
    return {**files, name: data, MANIFEST_FILE: json.dumps(manifest).encode()}


def npz_with(files: dict[str, bytes], **changes: Any) -> bytes:
    with np.load(io.BytesIO(files[MODEL_FILE]), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for name, change in changes.items():
        arrays[name] = change(arrays[name])
    arrays = {k: v for k, v in arrays.items() if v is not None}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _out_of_range(children: np.ndarray) -> np.ndarray:
    children = children.copy()
    children[3] = children.size
    return children


def _nan_threshold(threshold: np.ndarray) -> np.ndarray:
    threshold = threshold.copy()
    threshold[0] = np.nan
    return threshold


def _inner_node_as_end(children: np.ndarray) -> np.ndarray:
    children = children.copy()
    children[0:2] = 0  # the first root points to itself, but it is no leaf: its value is 0
    return children


def _uneven_cover(cover: np.ndarray) -> np.ndarray:
    cover = cover.copy()
    cover[0] += 1.0  # the first root now has one training row its children never saw
    return cover


MALFORMED_MODEL: dict[str, Callable[[dict[str, bytes]], bytes]] = {
    "truncated": lambda files: files[MODEL_FILE][: len(files[MODEL_FILE]) // 2],
    "not-a-zip": lambda files: b"\x80\x04 a pickle, maybe",
    "missing-array": lambda files: npz_with(files, value=lambda _: None),
    "wrong-dtype": lambda files: npz_with(files, feature=lambda a: a.astype(np.float64)),
    "wrong-shape": lambda files: npz_with(files, threshold=lambda a: a[:-1]),
    "child-out-of-range": lambda files: npz_with(files, children=_out_of_range),
    "nan-threshold": lambda files: npz_with(files, threshold=_nan_threshold),
    "feature-out-of-range": lambda files: npz_with(files, feature=lambda a: a + 31),
    "depth-too-large": lambda files: npz_with(files, depth=lambda _: np.int32(10_000)),
    "walk-not-ending-in-leaves": lambda files: npz_with(
        files, children=_inner_node_as_end, depth=lambda _: np.int32(0)
    ),
    "object-array": lambda files: npz_with(files, roots=lambda a: a.astype(object)),
    "cover-uneven": lambda files: npz_with(files, cover=_uneven_cover),
    "cover-not-positive": lambda files: npz_with(files, cover=lambda a: a * 0.0),
    "cover-wrong-shape": lambda files: npz_with(files, cover=lambda a: a[:-1]),
}
MALFORMED_REASONS = {
    "truncated": "cannot be read",
    "not-a-zip": "cannot be read",
    "missing-array": "no array 'value'",
    "wrong-dtype": "feature is float64",
    "wrong-shape": "threshold has",
    "child-out-of-range": "child indices outside",
    "nan-threshold": "NaN thresholds",
    "feature-out-of-range": "feature indices outside",
    "depth-too-large": "depth 10000 outside",
    "walk-not-ending-in-leaves": "not reached a leaf",
    "object-array": "cannot be read",
    "cover-uneven": "children do not share their parent's cover",
    "cover-not-positive": "cover counts must be finite and > 0",
    "cover-wrong-shape": "cover has",
}


@pytest.mark.parametrize("case", sorted(MALFORMED_MODEL))
def test_a_malformed_model_file_is_refused_with_its_reason(
    bundle_files: dict[str, bytes], case: str
) -> None:
    files = with_file(bundle_files, MODEL_FILE, MALFORMED_MODEL[case](bundle_files))
    with pytest.raises(BundleError, match=MALFORMED_REASONS[case]) as caught:
        load_bundle(files)
    assert caught.value.reason == "malformed_serving_form"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b'{"kind": "pickle"}', "is not of kind"),
        (json.dumps({"kind": "transaction-features/1", "outputs": []}).encode(), "other model"),
    ],
)
def test_a_malformed_preprocessor_file_is_refused(
    bundle_files: dict[str, bytes], content: bytes, message: str
) -> None:
    with pytest.raises(BundleError, match=message) as caught:
        load_bundle(with_file(bundle_files, PREPROCESSOR_FILE, content))
    assert caught.value.reason == "malformed_serving_form"


def test_preprocessor_numbers_must_be_finite_and_scales_positive(
    bundle_files: dict[str, bytes],
) -> None:
    spec = json.loads(bundle_files[PREPROCESSOR_FILE])
    for change, message in ((("scale", 0, 0.0), "must be > 0"), (("mean", 3, "x"), "finite")):
        key, index, value = change
        broken = json.loads(json.dumps(spec))
        broken[key][index] = value
        with pytest.raises(BundleError, match=message):
            load_bundle(with_file(bundle_files, PREPROCESSOR_FILE, json.dumps(broken).encode()))


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
