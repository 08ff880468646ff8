"""Promote a bundle as `fraudctl promote` would, without its checks: tests promote broken
bundles on purpose."""

from __future__ import annotations

from ml.runtime.bundle import Manifest, sha256_hex
from ml.runtime.layout import MANIFEST_FILE
from ml.runtime.store import ArtifactStore, Pointer, publish_version, utc_now


def promote_files(store: ArtifactStore, files: dict[str, bytes]) -> str:
    """Publish a bundle under the version its manifest names and point production at it;
    return the version. The manifest is read, not verified."""
    version = Manifest.from_json(files[MANIFEST_FILE]).version
    publish_version(store, version, files)
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
