"""`BundleCache` on its own: what it keeps, and how a conflicting copy is replaced whole."""

from __future__ import annotations

from pathlib import Path

from ml.runtime.bundle_cache import KEEP_VERSIONS, BundleCache
from ml.runtime.store import Pointer, utc_now
from ml.runtime.versions import list_versions


def objects(version: str, model: bytes) -> dict[str, bytes]:
    return {
        f"models/{version}/manifest.json": b"{}",
        f"models/{version}/signatures/k.json": b"{}",
        f"models/{version}/model.npz": model,
    }


def pointer(version: str) -> Pointer:
    return Pointer(version, "0" * 64, None, utc_now(), "cache")


def test_a_conflicting_cached_copy_is_replaced_whole(tmp_path: Path) -> None:
    cache = BundleCache(tmp_path / "cache")
    cache.remember(pointer("v1"), objects("v1", b"old bytes"))
    cache.remember(pointer("v1"), objects("v1", b"new bytes"))
    for key, data in objects("v1", b"new bytes").items():
        assert cache.store.get(key) == data  # every file, not only the one that differed
    state = cache.store.current_pointer()
    assert state.pointer is not None
    assert state.pointer.version == "v1"


def test_only_the_latest_versions_are_kept(tmp_path: Path) -> None:
    cache = BundleCache(tmp_path / "cache")
    for index in range(KEEP_VERSIONS + 3):
        cache.remember(pointer(f"v{index}"), objects(f"v{index}", b"x"))
    kept = list_versions(cache.store)
    assert len(kept) == KEEP_VERSIONS
    assert f"v{KEEP_VERSIONS + 2}" in kept
