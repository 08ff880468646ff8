"""Trusted artefacts, against a real `fraudctl serve` (2 workers) and moto S3: an attacker who
can write to the bucket cannot make the service run code or serve a bundle nobody signed."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml.data import Dataset
from ml.runtime.bundle import sha256_hex
from ml.runtime.layout import AUDIT_MODEL_FILE, MANIFEST_FILE, MODEL_FILE, signature_key
from ml.runtime.s3_store import S3Store
from ml.runtime.store import Pointer, utc_now
from ml.runtime.versions import fetch_signatures, publish_version
from ml.signing import generate_keys, sign_version, signing_key_from_env
from ml.testing.bundles import promote_files
from ml.testing.keys import ADMIN
from ml.testing.server import ServiceProcess, once, server_env, serving, versions_seen
from ml.train import train_bundle
from tests.support.bundle_edits import MALFORMED_MODEL, MALFORMED_REASONS, with_file

pytestmark = pytest.mark.slow


class SideEffect:
    """A pickle that, when loaded, creates a file (then yields a harmless value)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.makedirs, (str(self.marker),))


def point_at(store: S3Store, version: str, manifest: bytes) -> None:
    """What an attacker with write access does last: recompute the pointer."""
    state = store.current_pointer()
    previous = state.pointer.version if state.pointer else None
    pointer = Pointer(version, sha256_hex(manifest), previous, utc_now())
    store.swap_pointer(pointer, state.etag)


def reload_error(port: int) -> tuple[int, dict[str, Any]]:
    status, body = once(port, "POST", "/reload", b"", ADMIN)
    return status, body.get("error", body)


@pytest.fixture
def service(
    tmp_path: Path, s3_store: S3Store, bundle_files: dict[str, bytes]
) -> Iterator[ServiceProcess]:
    promote_files(s3_store, bundle_files)
    # Every import any server process makes goes to its log: the proof of what is loaded.
    with serving(tmp_path, server_env(s3_store, PYTHONPROFILEIMPORTTIME="1")) as server:
        yield server


def test_a_pickle_that_runs_code_has_no_effect(
    tmp_path: Path,
    service: ServiceProcess,
    s3_store: S3Store,
    bundle_version: str,
    other_bundle_files: dict[str, bytes],
) -> None:
    marker = tmp_path / "the-attack-ran"
    evil = pickle.dumps(SideEffect(marker))
    # 1. A signed, genuine version whose audit pickle is swapped afterwards: the service never
    #    fetches model.joblib, so it serves the genuine serving form and nothing runs.
    genuine = promote_files(s3_store, other_bundle_files)
    s3_store._client.put_object(  # the attacker overwrites the object in the bucket
        Bucket=s3_store.bucket, Key=s3_store._key(f"models/{genuine}/{AUDIT_MODEL_FILE}"), Body=evil
    )
    status, body = once(service.port, "POST", "/reload", b"", ADMIN)
    assert status == 200, body
    assert body["version"] == genuine
    # 2. A new version: the pickle, checksums recomputed in its manifest and in the pointer,
    #    and the genuine version's signature copied across. Refused before anything is read.
    attack = with_file(other_bundle_files, AUDIT_MODEL_FILE, evil)
    manifest = json.loads(attack[MANIFEST_FILE])
    manifest["version"] = "20990101T000000Z-attack"
    attack[MANIFEST_FILE] = json.dumps(manifest).encode()
    publish_version(s3_store, manifest["version"], attack)
    (stolen,) = fetch_signatures(s3_store, genuine)
    key = json.loads(stolen)["key_id"]
    s3_store.put_if_absent(signature_key(manifest["version"], key), stolen)
    point_at(s3_store, manifest["version"], attack[MANIFEST_FILE])
    status, error = reload_error(service.port)
    assert status == 502
    assert error["code"] == "bad_signature"
    assert versions_seen(service.port, 20) == {genuine: 20}  # both workers kept it
    assert not marker.exists()
    # Neither the master nor any worker ever imported a pickle loader or scikit-learn.
    imported = [line.split("|")[-1].strip() for line in service.log().splitlines() if "|" in line]
    assert "service.model.dataplane" in imported  # only workers import it: the probe sees them
    assert not [m for m in imported if m.split(".")[0] in ("sklearn", "scipy", "joblib")]


def test_unsigned_and_untrusted_bundles_are_refused_and_counted(
    tmp_path: Path,
    service: ServiceProcess,
    s3_store: S3Store,
    bundle_version: str,
    other_bundle_files: dict[str, bytes],
) -> None:
    promote_files(s3_store, other_bundle_files, sign=False)
    status, error = reload_error(service.port)
    assert (status, error["code"]) == (502, "unsigned")
    stranger, _, _ = generate_keys(tmp_path / "stranger")
    os.environ["FRAUD_SIGNING_KEY_FILE"], own = str(stranger), os.environ["FRAUD_SIGNING_KEY_FILE"]
    try:
        version = json.loads(other_bundle_files[MANIFEST_FILE])["version"]
        sign_version(s3_store, version, signing_key_from_env())
    finally:
        os.environ["FRAUD_SIGNING_KEY_FILE"] = own
    status, error = reload_error(service.port)
    assert (status, error["code"]) == (502, "untrusted_key")
    assert "does not trust" in error["message"]
    assert versions_seen(service.port, 10) == {bundle_version: 10}
    text = service.metrics()
    assert 'fraud_model_refusals_total{reason="unsigned"} 1.0' in text
    assert 'fraud_model_refusals_total{reason="untrusted_key"} 1.0' in text


@pytest.fixture(scope="module")
def tree_bundle_files(small_dataset: Dataset) -> dict[str, bytes]:
    return train_bundle(small_dataset, model_name="hgb", seed=6)


def test_each_malformed_serving_file_is_refused_with_its_reason(
    service: ServiceProcess,
    s3_store: S3Store,
    bundle_version: str,
    tree_bundle_files: dict[str, bytes],
) -> None:
    """Signed by the trusted key, checksums right, content wrong: the last line of defence."""
    for n, case in enumerate(sorted(MALFORMED_MODEL)):
        files = with_file(tree_bundle_files, MODEL_FILE, MALFORMED_MODEL[case](tree_bundle_files))
        manifest = json.loads(files[MANIFEST_FILE])
        manifest["version"] = f"20990101T0000{n:02d}Z-{case}"
        files[MANIFEST_FILE] = json.dumps(manifest).encode()
        promote_files(s3_store, files)
        status, error = reload_error(service.port)
        assert status == 502, (case, error)
        assert error["code"] == "malformed_serving_form", (case, error)
        assert MALFORMED_REASONS[case] in error["message"], (case, error)
    assert versions_seen(service.port, 10) == {bundle_version: 10}
    assert once(service.port, "GET", "/health/ready")[0] == 200


def test_key_rotation(
    tmp_path: Path,
    s3_store: S3Store,
    bundle_files: dict[str, bytes],
    other_bundle_files: dict[str, bytes],
) -> None:
    """Trust old and new, move signing to the new key, then trust only the new one."""
    old_trusted = os.environ["FRAUD_TRUSTED_KEYS"]
    _, new_public, new_raw = generate_keys(tmp_path / "new")
    first = promote_files(s3_store, bundle_files)  # signed with the old (session) key
    both = server_env(s3_store, FRAUD_TRUSTED_KEYS=f"{old_trusted},{new_public}")
    server = ServiceProcess(tmp_path, both).start()
    try:
        server.wait_ready()
        os.environ["FRAUD_SIGNING_KEY_FILE"], own = (
            str(tmp_path / "new" / "signing.pem"),
            os.environ["FRAUD_SIGNING_KEY_FILE"],
        )
        try:
            second = promote_files(s3_store, other_bundle_files)  # signed with the new key
        finally:
            os.environ["FRAUD_SIGNING_KEY_FILE"] = own
        status, body = once(server.port, "POST", "/reload", b"", ADMIN)
        assert (status, body["version"]) == (200, second)
    finally:
        server.stop()
    only_new = ServiceProcess(tmp_path, server_env(s3_store, FRAUD_TRUSTED_KEYS=new_raw)).start()
    try:
        only_new.wait_ready()
        assert versions_seen(only_new.port, 4) == {second: 4}
        point_at(s3_store, first, s3_store.get(f"models/{first}/{MANIFEST_FILE}"))
        status, error = reload_error(only_new.port)
        assert (status, error["code"]) == (502, "untrusted_key")  # old key no longer trusted
        assert versions_seen(only_new.port, 4) == {second: 4}
    finally:
        only_new.stop()
