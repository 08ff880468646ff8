import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from ml.runtime.bundle import load_bundle, sha256_hex
from ml.runtime.history import read_history, record_history
from ml.runtime.layout import MANIFEST_FILE
from ml.runtime.local_store import LocalStore
from ml.runtime.s3_store import S3Store
from ml.runtime.store import (
    MAX_SIGNATURE_FILES,
    POINTER_MAX_BYTES,
    ArtifactReader,
    ArtifactStore,
    InvalidPointer,
    ObjectExists,
    ObjectNotFound,
    ObjectTooLarge,
    Pointer,
    PointerConflict,
    StoreError,
    StoreUnavailable,
    utc_now,
)
from ml.runtime.store_uri import open_reader, open_store
from ml.runtime.versions import fetch_signatures, fetch_version, list_versions, publish_version


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
    assert [p.version for p in read_history(store).entries] == ["v2", "v1"]


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
    from ml.testing.processes import AWS_ENV, free_port

    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable, match=r"production\.json"):
        S3Store("bucket").current_pointer()


def test_missing_bucket_is_named(moto_endpoint: str) -> None:
    with pytest.raises(StoreError, match="bucket 'no-such-bucket-x' does not exist"):
        S3Store("no-such-bucket-x").get("production.json")


# --- reads are bounded: the service reads what an attacker may have written -------------------


def reader_of(store: ArtifactStore, max_object_bytes: int) -> ArtifactReader:
    """The service's read-only view of the same store, with a read limit."""
    return open_reader(store.uri, max_object_bytes=max_object_bytes)


def test_an_object_over_the_limit_is_refused_unread(store: ArtifactStore) -> None:
    store.put_if_absent("models/v1/manifest.json", b"x" * 5000)
    reader = reader_of(store, max_object_bytes=4096)
    with pytest.raises(ObjectTooLarge, match="is 5000 bytes; the limit for it is 4096 bytes"):
        reader.get("models/v1/manifest.json")
    with pytest.raises(ObjectTooLarge, match="limit for it is 100 bytes"):
        reader.get("models/v1/manifest.json", max_bytes=100)
    big_enough = reader_of(store, max_object_bytes=5000)
    assert big_enough.get("models/v1/manifest.json") == b"x" * 5000


def test_a_serving_file_is_read_only_up_to_its_declared_size(store: ArtifactStore) -> None:
    store.put_if_absent("models/v1/model.npz", b"y" * 300)
    reader = reader_of(store, max_object_bytes=1024 * 1024)
    with pytest.raises(ObjectTooLarge, match="limit for it is 200 bytes"):
        fetch_version(reader, "v1", ("model.npz",), sizes={"model.npz": 200})
    assert fetch_version(reader, "v1", ("model.npz",), sizes={"model.npz": 300}) == {
        "model.npz": b"y" * 300
    }


def test_a_pointer_is_read_up_to_64_kib(store: ArtifactStore) -> None:
    store.swap_pointer(pointer("v1"), None)
    reader = reader_of(store, max_object_bytes=1024 * 1024)
    assert reader.current_pointer().pointer is not None
    if isinstance(store, LocalStore):
        (store.root / "production.json").write_bytes(b" " * (POINTER_MAX_BYTES + 1))
    else:
        assert isinstance(store, S3Store)
        store._client.put_object(  # an unconditional write, as an attacker's
            Bucket=store.bucket, Key=store.prefix + "production.json", Body=b" " * 70_000
        )
    with pytest.raises(ObjectTooLarge):
        reader.current_pointer()


def test_a_local_store_reads_only_regular_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "models" / "v1").mkdir(parents=True)
    os.mkfifo(tmp_path / "models" / "v1" / "manifest.json")  # a reader would block forever
    with pytest.raises(ObjectTooLarge, match="is not a regular file"):
        store.get("models/v1/manifest.json")
    sparse = tmp_path / "models" / "v1" / "model.npz"
    with open(sparse, "wb") as handle:
        handle.truncate(1024**3)
    with pytest.raises(ObjectTooLarge, match="is 1073741824 bytes"):
        store.get("models/v1/model.npz")


@pytest.mark.parametrize(
    "data",
    [b"[" * 50_000 + b"]" * 50_000, b"\xff\xfe not text", b"[]", b'{"version": 1}'],
    ids=["nested", "not-utf8", "not-an-object", "wrong-types"],
)
def test_a_malformed_pointer_is_an_invalid_pointer_error(data: bytes) -> None:
    with pytest.raises(InvalidPointer, match=r"production\.json is not a valid pointer"):
        Pointer.from_json(data)


def test_listing_stops_at_its_limit(store: ArtifactStore) -> None:
    for index in range(30):
        store.put_if_absent(f"models/v1/signatures/{index:04d}.json", b"{}")
    assert len(store.list_keys("models/v1/signatures/")) == 30
    reader = reader_of(store, max_object_bytes=1024 * 1024)
    for lister in (store, reader):
        assert len(lister.list_keys("models/v1/signatures/", limit=7)) == 7


def test_signatures_of_trusted_keys_are_read_by_name_and_junk_is_not_read(
    store: ArtifactStore,
) -> None:
    """A prefix someone filled with signature files: the trusted key's is read by its name;
    with no trusted one there, at most MAX_SIGNATURE_FILES are listed and read."""
    for index in range(40):
        store.put_if_absent(f"models/v1/signatures/{index:04d}.json", b"junk")
    store.put_if_absent("models/v1/signatures/ffffffffffffffff.json", b"genuine")
    reader = reader_of(store, max_object_bytes=1024 * 1024)
    assert fetch_signatures(reader, "v1", frozenset({"ffffffffffffffff"})) == [b"genuine"]
    untrusted = fetch_signatures(reader, "v1", frozenset({"0123456789abcdef"}))
    assert len(untrusted) == MAX_SIGNATURE_FILES


def test_a_pointer_with_deeply_nested_details_is_read_without_recursion() -> None:
    """Only the version and the manifest's sha256 are followed; nesting in `details` (which a
    copy of the pointer would recurse into) must not crash a reload."""
    details = b'{"a":' * 900 + b"1" + b"}" * 900
    data = (
        b'{"version": "v1", "manifest_sha256": "' + b"0" * 64 + b'", "previous_version": null,'
        b' "promoted_at": "t", "details": ' + details + b"}"
    )
    assert Pointer.from_json(data).version == "v1"
