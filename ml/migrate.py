"""Bring a store made before pickle-free, signed bundles up to date, without retraining.

For every version: a format-1 bundle (pickles only) is converted: its joblib files are loaded
here, on the training side, by an operator who trusts the store's history, exported to the
serving form, proven equivalent on the old canary rows, and published as a new version, signed.
If production named the old version, the pointer moves to the converted one (action
`migrate`). Format-2 versions are signed with the current key (idempotent).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import joblib
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ml.build import build_bundle_files
from ml.promote import who
from ml.runtime.bundle import load_bundle
from ml.runtime.history import record_history
from ml.runtime.layout import AUDIT_FILES, AUDIT_MODEL_FILE, AUDIT_PREPROCESSOR_FILE, MANIFEST_FILE
from ml.runtime.manifest import FORMAT_VERSION
from ml.runtime.store import ArtifactStore, Pointer, utc_now
from ml.runtime.versions import fetch_version, list_versions, publish_version
from ml.signing import sign_version


@dataclass
class MigrationReport:
    converted: dict[str, str] = field(default_factory=dict)  # old version -> new version
    signed: list[str] = field(default_factory=list)
    pointer_moved: tuple[str, str] | None = None


def migrate_store(
    store: ArtifactStore,
    key: Ed25519PrivateKey,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> MigrationReport:
    report = MigrationReport()
    manifests = {
        version: json.loads(fetch_version(store, version, (MANIFEST_FILE,))[MANIFEST_FILE])
        for version in list_versions(store)
    }
    done = {
        m.get("params", {}).get("migrated_from"): v
        for v, m in manifests.items()
        if m.get("format_version") == FORMAT_VERSION
    }
    for version, manifest in manifests.items():
        if manifest.get("format_version") == FORMAT_VERSION:
            sign_version(store, version, key)
            report.signed.append(version)
            progress(f"signed {version}")
        elif manifest.get("format_version") == 1 and version in done:
            progress(f"{version} was converted before, to {done[version]}")
        elif manifest.get("format_version") == 1:
            new = _convert(store, version, manifest)
            sign_version(store, new, key)
            report.converted[version] = new
            progress(f"converted {version} -> {new} (signed)")
    state = store.current_pointer()
    live = state.pointer
    converted = {old: new for old, new in done.items() if old} | report.converted
    if live is not None and live.version in converted:
        new = converted[live.version]
        bundle = load_bundle(fetch_version(store, new))
        pointer = Pointer(
            version=new,
            manifest_sha256=bundle.manifest_sha256,
            previous_version=live.version,
            promoted_at=utc_now(),
            promoted_by=who(),
            action="migrate",
            details={"reason": f"{live.version} converted to a signed, pickle-free bundle"},
        )
        store.swap_pointer(pointer, expected_etag=state.etag)
        record_history(store, pointer)
        report.pointer_moved = (live.version, new)
        progress(f"production now names {new} (was {live.version})")
    return report


def _convert(store: ArtifactStore, version: str, manifest: dict[str, object]) -> str:
    files = fetch_version(store, version, AUDIT_FILES)
    model = joblib.load(io.BytesIO(files[AUDIT_MODEL_FILE]))
    preprocessor = joblib.load(io.BytesIO(files[AUDIT_PREPROCESSOR_FILE]))
    canary = manifest["canary"]
    assert isinstance(canary, dict)
    converted = build_bundle_files(
        model=model,
        preprocessor=preprocessor,
        threshold=float(str(manifest["threshold"])),
        model_family=str(manifest["model_family"]),
        training_data=dict(manifest["training_data"]),  # type: ignore[call-overload]
        params=dict(manifest["params"]) | {"migrated_from": version},  # type: ignore[call-overload]
        metrics=dict(manifest["metrics"]),  # type: ignore[call-overload]
        canary_rows=np.asarray(canary["rows"], dtype=np.float64),
        created_at=datetime.fromisoformat(str(manifest["created_at"])),
    )
    bundle = load_bundle(converted)  # the same checks the service applies
    old = np.asarray(canary["fraud_probability"], dtype=np.float64)
    if not np.allclose(bundle.score(np.asarray(canary["rows"])), old, rtol=0, atol=1e-9):
        raise ValueError(f"{version}: the converted bundle does not reproduce its canary rows")
    publish_version(store, bundle.version, converted)
    return bundle.version
