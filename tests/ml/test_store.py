import threading
from dataclasses import replace
from pathlib import Path

import pytest

from ml.runtime.bundle import load_bundle, sha256_hex
from ml.runtime.layout import MANIFEST_FILE
from ml.runtime.local_store import LocalStore
from ml.runtime.s3_store import S3Store
from ml.runtime.store import (
    ArtifactStore,
    ObjectExists,
    ObjectNotFound,
    Pointer,
    PointerConflict,
    StoreError,
    StoreUnavailable,
    fetch_version,
    list_versions,
    open_store,
    publish_version,
    read_history,
    record_history,
    utc_now,
)


def pointer(version: str, previous: str | None = None) -> Pointer:
    return Pointer(
        version=version, manifest_sha256="0" * 64, previous_version=previous, promoted_at=utc_now()
    )


def test_objects_are_create_only(store: ArtifactStore) -> None:
    store.put_if_absent("models/v1/a", b"one")
    with pytest.raises(ObjectExists):
        store.put_if_absent("models/v1/a", b"two")
    assert store.get("models/v1/a") == b"one"


def test_missing_object_is_named(store: ArtifactStore) -> None:
    with pytest.raises(ObjectNotFound, match="models/nope/x does not exist"):
        store.get("models/nope/x")


def test_pointer_compare_and_swap(store: ArtifactStore) -> None:
    empty = store.current_pointer()
    assert empty.pointer is None
    assert empty.etag is None
    etag1 = store.swap_pointer(pointer("v1"), expected_etag=None)
    with pytest.raises(PointerConflict):  # a second "first" writer loses
        store.swap_pointer(pointer("other"), expected_etag=None)
    etag2 = store.swap_pointer(pointer("v2", "v1"), expected_etag=etag1)
    with pytest.raises(PointerConflict):  # a writer holding the old ETag loses
        store.swap_pointer(pointer("v3", "v1"), expected_etag=etag1)
    state = store.current_pointer()
    assert state.pointer is not None
    assert state.pointer.version == "v2"
    assert state.etag == etag2


def test_conditional_pointer_read(store: ArtifactStore) -> None:
    etag = store.swap_pointer(pointer("v1"), expected_etag=None)
    assert store.read_pointer(if_none_match=etag) is None
    store.swap_pointer(pointer("v2", "v1"), expected_etag=etag)
    changed = store.read_pointer(if_none_match=etag)
    assert changed is not None
    assert changed.pointer is not None
    assert changed.pointer.version == "v2"


def test_racing_writers_exactly_one_wins(store: ArtifactStore) -> None:
    etag = store.swap_pointer(pointer("v0"), expected_etag=None)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        barrier.wait()
        try:
            store.swap_pointer(pointer(f"v{i + 1}", "v0"), expected_etag=etag)
            outcomes.append("won")
        except PointerConflict:
            outcomes.append("lost")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]


def test_bundle_round_trip_through_the_store(
    store: ArtifactStore, bundle_files: dict[str, bytes], bundle_version: str
) -> None:
    publish_version(store, bundle_version, bundle_files)
    publish_version(store, bundle_version, bundle_files)  # an interrupted upload may be retried
    assert list_versions(store) == [bundle_version]
    fetched = fetch_version(store, bundle_version)
    assert fetched == bundle_files
    bundle = load_bundle(fetched, expected_manifest_sha256=sha256_hex(bundle_files[MANIFEST_FILE]))
    assert bundle.version == bundle_version


def test_a_version_cannot_be_overwritten(
    store: ArtifactStore, bundle_files: dict[str, bytes], bundle_version: str
) -> None:
    publish_version(store, bundle_version, bundle_files)
    changed = {**bundle_files, "model.joblib": b"something else"}
    with pytest.raises(ObjectExists, match="versions are immutable"):
        publish_version(store, bundle_version, changed)
    assert fetch_version(store, bundle_version) == bundle_files


def test_history_is_an_append_only_log(store: ArtifactStore) -> None:
    first = pointer("v1")
    second = replace(pointer("v2", "v1"), action="rollback")
    record_history(store, first)
    record_history(store, second)
    assert [p.version for p in read_history(store)] == ["v1", "v2"]


def test_open_store_understands_uris(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store("s3://bucket/some/prefix")
    assert isinstance(s3, S3Store)
    assert s3.prefix == "some/prefix/"
    with pytest.raises(StoreError, match="is not s3:// or file://"):
        open_store("gs://bucket")
    with pytest.raises(StoreError, match="has no bucket"):
        open_store("s3://")


def test_local_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="escapes the store root"):
        LocalStore(tmp_path).get("../../etc/passwd")


def test_unreachable_s3_is_reported_as_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.processes import AWS_ENV, free_port

    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable, match=r"production\.json"):
        S3Store("bucket").current_pointer()


def test_missing_bucket_is_named(moto_endpoint: str) -> None:
    with pytest.raises(StoreError, match="bucket 'no-such-bucket-x' does not exist"):
        S3Store("no-such-bucket-x").get("production.json")
