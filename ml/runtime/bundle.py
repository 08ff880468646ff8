"""The model bundle as the service reads it: verified, and loaded without executing anything.

A bundle is a set of files: the serving form of the preprocessor (`preprocessor.json`) and the
model (`model.npz`, read with `allow_pickle=False`), joblib copies of both for training-side
audit (never fetched by the service), and `manifest.json`, which names every file with its
sha256, the library versions it was built with, the training data, parameters, metrics, and
canary rows with the probabilities scikit-learn gave them. The manifest is signed (Ed25519,
`ml.runtime.signing`).

`load_version`, the service's way in, checks in this order and reads nothing further until a
check passes: the manifest's sha256 against the pointer; a trusted signature over it; the
format; then the serving files' checksums; their contents (shapes, dtypes, indices); and the
canary rows through every scoring path, within 1e-9 of scikit-learn at training time. Each
refusal is a `BundleError` with a stable reason code. Building bundles is `ml.build`'s job.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.runtime.drift import DriftReference
from ml.runtime.features import SpecError, Standardiser
from ml.runtime.kinds import Explainer, Scorer, load_scorer, sigmoid
from ml.runtime.layout import (
    ARTIFACT_FILES,
    MANIFEST_FILE,
    MODEL_FILE,
    PREPROCESSOR_FILE,
    SERVING_FILES,
)
from ml.runtime.manifest import BundleError, Manifest
from ml.runtime.schema import FEATURE_NAMES
from ml.runtime.signing import SignatureError, TrustedKeys
from ml.runtime.store import ArtifactReader
from ml.runtime.versions import fetch_signatures, fetch_version

CANARY_TOLERANCE = 1e-9
EXPLANATION_TOLERANCE = 1e-6  # contributions + base value against the log-odds


class ExplanationUnavailable(Exception):
    """The bundle scores but cannot explain; the message says why."""


@dataclass(frozen=True)
class Explanation:
    """Rows scored and explained: `contributions` (rows, raw inputs in `FEATURE_NAMES`
    order) plus `base_value` equal `log_odds`."""

    probabilities: np.ndarray
    log_odds: np.ndarray
    base_value: float
    contributions: np.ndarray


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """A verified, immutable bundle ready to score. Swap whole bundles, never their parts."""

    manifest: Manifest
    manifest_sha256: str
    preprocessor: Standardiser
    model: Scorer
    signed_by: str | None = None  # the trusted key that vouched for it (None: not checked)
    explainer: Explainer | None = None
    unexplainable_because: str = "no explainer was built"
    drift_reference: DriftReference | None = None

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    def score(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities for rows of raw features in `FEATURE_NAMES` order."""
        return self.model.predict_proba(self.preprocessor.transform(X))

    def explain(self, X: np.ndarray) -> Explanation:
        """Score rows of raw features and say how much each input moved each row's log-odds."""
        if self.explainer is None:
            raise ExplanationUnavailable(
                f"model {self.version} cannot explain its scores: {self.unexplainable_because}"
            )
        inputs = self.preprocessor.transform(X)
        log_odds = self.model.raw(inputs)
        return Explanation(
            probabilities=sigmoid(log_odds),  # what predict_proba gives, without a second walk
            log_odds=log_odds,
            base_value=self.explainer.base_value,
            contributions=self.explainer.contributions(inputs),
        )


def runtime_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "numpy": np.__version__}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bundle_dir(directory: Path) -> dict[str, bytes]:
    if not directory.is_dir():
        raise BundleError("missing_file", f"bundle directory {directory} does not exist")
    files = {}
    for name in (MANIFEST_FILE, *ARTIFACT_FILES):  # the manifest's absence is the first news
        try:
            files[name] = (directory / name).read_bytes()
        except FileNotFoundError:
            if name == MANIFEST_FILE or name in SERVING_FILES:
                raise BundleError("missing_file", f"bundle {directory} has no {name}") from None
    return files


def load_bundle_dir(directory: Path) -> ModelBundle:
    return load_bundle(read_bundle_dir(directory))


def load_version(
    store: ArtifactReader,
    version: str,
    *,
    expected_manifest_sha256: str | None = None,
    trusted_keys: TrustedKeys | None = None,
) -> ModelBundle:
    """Fetch `models/<version>/` and verify it. The manifest (and its signatures, when
    `trusted_keys` is given) are checked before any other file is fetched; the service always
    gives trusted keys and fetches only the serving files."""
    (manifest_bytes,) = fetch_version(store, version, (MANIFEST_FILE,)).values()
    manifest_sha = _check_manifest_sha(manifest_bytes, expected_manifest_sha256)
    signer = None
    if trusted_keys is not None:
        try:
            signatures = fetch_signatures(store, version, frozenset(trusted_keys.keys))
            signer = trusted_keys.verify(manifest_sha, signatures)
        except SignatureError as exc:
            if exc.reason == "unsigned":
                Manifest.from_json(manifest_bytes)  # a format-1 bundle: say how to migrate
            raise BundleError(exc.reason, f"bundle {version}: {exc}") from None
    manifest = Manifest.from_json(manifest_bytes)  # the format, before fetching what it names
    names = SERVING_FILES if trusted_keys is not None else ARTIFACT_FILES
    files = fetch_version(store, version, names, _declared_sizes(manifest))
    return _assemble(manifest, manifest_sha, files, signed_by=signer)


def _declared_sizes(manifest: Manifest) -> dict[str, int]:
    """Each file's size as the manifest states it: no more than that is read of it."""
    sizes: dict[str, int] = {}
    if not isinstance(manifest.files, dict):
        return sizes  # unsigned: the checksums refuse it
    for name, entry in manifest.files.items():
        size = entry.get("bytes") if isinstance(entry, dict) else None
        if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            sizes[name] = size
    return sizes


def _check_manifest_sha(manifest_bytes: bytes, expected: str | None) -> str:
    manifest_sha = sha256_hex(manifest_bytes)
    if expected is not None and manifest_sha != expected:
        raise BundleError(
            "checksum_mismatch",
            f"manifest.json has sha256 {manifest_sha}, the pointer expects {expected}",
        )
    return manifest_sha


def load_bundle(
    files: Mapping[str, bytes], *, expected_manifest_sha256: str | None = None
) -> ModelBundle:
    """Verify and load a bundle from its files: manifest checksum (when the caller knows it),
    file checksums, the serving form's contents, then canary rows. Raises `BundleError`."""
    if MANIFEST_FILE not in files:
        raise BundleError("missing_file", "the bundle has no manifest.json")
    manifest_bytes = files[MANIFEST_FILE]
    manifest_sha = _check_manifest_sha(manifest_bytes, expected_manifest_sha256)
    return _assemble(Manifest.from_json(manifest_bytes), manifest_sha, files)


def _assemble(
    manifest: Manifest,
    manifest_sha: str,
    files: Mapping[str, bytes],
    *,
    signed_by: str | None = None,
) -> ModelBundle:
    """The checks after the manifest's own: file checksums, feature names, the serving form's
    contents, canary rows; then the bundle."""
    _verify_files(manifest, files)
    if manifest.feature_names != list(FEATURE_NAMES):
        raise BundleError(
            "invalid_manifest",
            f"bundle {manifest.version} expects features {manifest.feature_names}, "
            f"this code provides {list(FEATURE_NAMES)}",
        )
    try:
        preprocessor = Standardiser.from_json(files[PREPROCESSOR_FILE])
        model = load_scorer(str(manifest.serving.get("model_kind")), files[MODEL_FILE])
        drift = (
            None
            if manifest.drift_reference is None
            else DriftReference.from_json(manifest.drift_reference)
        )
    except SpecError as exc:
        raise BundleError("malformed_serving_form", f"bundle {manifest.version}: {exc}") from None
    try:
        explainer, unexplainable = model.explainer(), ""
    except SpecError as exc:  # it scores, but cannot explain: serve it, and say why on request
        explainer, unexplainable = None, str(exc)
    bundle = ModelBundle(
        manifest, manifest_sha, preprocessor, model, signed_by, explainer, unexplainable, drift
    )
    _verify_canary(bundle)
    return bundle


def _verify_files(manifest: Manifest, files: Mapping[str, bytes]) -> None:
    """Every serving file must be listed and match; audit copies, when present, too."""
    for name in ARTIFACT_FILES:
        if name not in files and name not in SERVING_FILES:
            continue
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


def _verify_canary(bundle: ModelBundle) -> None:
    try:
        rows = np.asarray(bundle.manifest.canary["rows"], dtype=np.float64)
        expected = np.asarray(bundle.manifest.canary["fraud_probability"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise BundleError("invalid_manifest", "manifest canary rows are malformed") from None
    if (
        rows.ndim != 2
        or rows.shape[0] == 0
        or rows.shape[1] != len(FEATURE_NAMES)
        or rows.shape[0] != expected.shape[0]
    ):
        raise BundleError("invalid_manifest", "manifest canary rows are missing or malformed")
    # Every way the service scores must reproduce training-time probabilities: many rows at
    # once (batches, micro-batches) and one row at a time.
    paths = {
        "batch": bundle.score(rows),
        "single": np.array([bundle.score(r[None])[0] for r in rows]),
    }
    for path, actual in paths.items():
        diff = float(np.max(np.abs(actual - expected)))
        if not diff <= CANARY_TOLERANCE:
            raise BundleError(
                "canary_mismatch",
                f"bundle {bundle.version}: canary rows scored via {path} differ from training "
                f"time by {diff:.3g} (tolerance {CANARY_TOLERANCE:g})",
            )
    if bundle.explainer is not None:
        explained = bundle.explain(rows)
        total = explained.contributions.sum(axis=1) + explained.base_value
        gap = float(np.max(np.abs(total - explained.log_odds)))
        if not gap <= EXPLANATION_TOLERANCE:
            raise BundleError(
                "explanation_mismatch",
                f"bundle {bundle.version}: explanations of the canary rows miss their log-odds "
                f"by {gap:.3g} (tolerance {EXPLANATION_TOLERANCE:g})",
            )
