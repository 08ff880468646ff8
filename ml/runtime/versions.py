"""Model versions on top of any store: published create-only, read back whole and bounded."""

from __future__ import annotations

from collections.abc import Mapping

from ml.runtime.layout import (
    BUNDLE_FILES,
    MODELS_PREFIX,
    SIGNATURES_DIR,
    signature_key,
    version_key,
)
from ml.runtime.store import (
    MAX_SIGNATURE_FILES,
    SIGNATURE_MAX_BYTES,
    ArtifactReader,
    ArtifactStore,
    ObjectExists,
    ObjectNotFound,
)


def put_create_only(store: ArtifactStore, key: str, data: bytes) -> None:
    """Create `key`; the same bytes already there (an earlier, interrupted upload) are
    accepted, different bytes refused: what is under models/ is immutable."""
    try:
        store.put_if_absent(key, data)
    except ObjectExists:
        if store.get(key) != data:
            raise ObjectExists(
                f"{store.uri}/{key} already exists with different content; versions are immutable"
            ) from None


def publish_version(store: ArtifactStore, version: str, files: Mapping[str, bytes]) -> None:
    """Upload a version's files create-only, manifest last."""
    for name in BUNDLE_FILES:
        if name in files:
            put_create_only(store, version_key(version, name), files[name])


def fetch_version(
    store: ArtifactReader,
    version: str,
    names: tuple[str, ...] = BUNDLE_FILES,
    sizes: Mapping[str, int] | None = None,
) -> dict[str, bytes]:
    """The named files of a version (all of them by default); a missing one raises, and so
    does one larger than `sizes` says it is (the signed manifest's sizes, when known)."""
    sizes = sizes or {}
    return {name: store.get(version_key(version, name), sizes.get(name)) for name in names}


def fetch_signatures(
    store: ArtifactReader, version: str, trusted: frozenset[str] = frozenset()
) -> list[bytes]:
    """The signature files of a version: those of the `trusted` key ids, read by name; only
    when none of them is there, the first `MAX_SIGNATURE_FILES` listed (so a refusal can name
    the keys that did sign). Whatever else is under the prefix is neither listed nor read."""
    found = []
    for key_id in sorted(trusted):
        try:
            found.append(store.get(signature_key(version, key_id), SIGNATURE_MAX_BYTES))
        except ObjectNotFound:
            continue
    if found:
        return found
    prefix = version_key(version, SIGNATURES_DIR + "/")
    listed = store.list_keys(prefix, limit=MAX_SIGNATURE_FILES)
    return [store.get(key, SIGNATURE_MAX_BYTES) for key in listed if key.endswith(".json")]


def list_versions(store: ArtifactReader) -> list[str]:
    names = {key.split("/")[1] for key in store.list_keys(MODELS_PREFIX) if key.count("/") >= 2}
    return sorted(names)
