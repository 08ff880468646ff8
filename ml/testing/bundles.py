"""Promote a bundle as `fraudctl promote` would, without its checks: tests promote broken
bundles on purpose."""

from __future__ import annotations

import json
from pathlib import Path

from ml.runtime.bundle import sha256_hex
from ml.runtime.layout import MANIFEST_FILE
from ml.runtime.store import ArtifactStore, Pointer, utc_now
from ml.runtime.versions import publish_version
from ml.signing import generate_keys, sign_version, signing_key_from_env


def signing_environment(directory: Path) -> dict[str, str]:
    """A new Ed25519 pair in `directory`, as the environment a deployment has: promotions sign
    with the private key (FRAUD_SIGNING_KEY_FILE), services trust the public one."""
    private, _, public = generate_keys(directory)
    return {"FRAUD_SIGNING_KEY_FILE": str(private), "FRAUD_TRUSTED_KEYS": public}


def promote_files(store: ArtifactStore, files: dict[str, bytes], *, sign: bool = True) -> str:
    """Publish a bundle under the version its manifest names, sign it with the session's key
    (FRAUD_SIGNING_KEY_FILE) unless told not to, and point production at it; return the
    version. The manifest is read, not verified."""
    version = str(json.loads(files[MANIFEST_FILE])["version"])
    publish_version(store, version, files)
    if sign:
        sign_version(store, version, signing_key_from_env())
    state = store.current_pointer()
    store.swap_pointer(
        Pointer(
            version=version,
            manifest_sha256=sha256_hex(files[MANIFEST_FILE]),
            previous_version=state.pointer.version if state.pointer else None,
            promoted_at=utc_now(),
        ),
        expected_etag=state.etag,
    )
    return version
