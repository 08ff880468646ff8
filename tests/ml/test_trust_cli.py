"""Keys, signatures and migration through `fraudctl`, on a local store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ml.cli import main
from ml.runtime.bundle import load_bundle, load_version, sha256_hex
from ml.runtime.history import read_history
from ml.runtime.layout import AUDIT_FILES, MANIFEST_FILE
from ml.runtime.local_store import LocalStore
from ml.runtime.manifest import BundleError
from ml.runtime.signing import TrustedKeys
from ml.runtime.store import Pointer, utc_now
from ml.runtime.versions import fetch_signatures, publish_version


def format_1(files: dict[str, bytes]) -> dict[str, bytes]:
    """A bundle as this project made them before signing: pickles and a format-1 manifest."""
    manifest = json.loads(files[MANIFEST_FILE])
    manifest["format_version"] = 1
    manifest["version"] = "20250101T000000Z-format1"
    manifest["files"] = {name: manifest["files"][name] for name in AUDIT_FILES}
    for key in ("serving", "prevalence", "training_rows"):
        manifest.pop(key)
    return {name: files[name] for name in AUDIT_FILES} | {
        MANIFEST_FILE: json.dumps(manifest).encode()
    }


def test_keys_generate_writes_a_private_pem_and_prints_the_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 0
    raw = capsys.readouterr().out.strip()
    assert (tmp_path / "k" / "signing.pem").stat().st_mode & 0o777 == 0o600
    assert (
        TrustedKeys.parse(raw).keys == TrustedKeys.parse(str(tmp_path / "k" / "signing.pub")).keys
    )
    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 1  # never overwrites


def test_migrate_converts_signs_and_repoints_production(
    tmp_path: Path, bundle_files: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "store")
    old = format_1(bundle_files)
    version = json.loads(old[MANIFEST_FILE])["version"]
    publish_version(store, version, old)
    store.swap_pointer(Pointer(version, sha256_hex(old[MANIFEST_FILE]), None, utc_now()), None)
    trusted = TrustedKeys.parse(os.environ["FRAUD_TRUSTED_KEYS"])
    with pytest.raises(BundleError, match="fraudctl migrate") as refused:
        load_version(store, version, trusted_keys=trusted)
    assert refused.value.reason == "needs_migration"
    assert main(["history", "--store", store.uri]) == 0  # old versions are still listed
    assert version in capsys.readouterr().out
    assert main(["migrate", "--store", store.uri]) == 0
    report = json.loads(capsys.readouterr().out)
    new = report["converted"][version]
    live = store.current_pointer().pointer
    assert live is not None
    assert live.version == new
    assert read_history(store).entries[0].action == "migrate"
    bundle = load_version(
        store, new, expected_manifest_sha256=live.manifest_sha256, trusted_keys=trusted
    )
    original = load_bundle(bundle_files)
    assert bundle.threshold == original.threshold
    assert bundle.manifest.canary == original.manifest.canary
    assert bundle.manifest.params["migrated_from"] == version
    assert main(["migrate", "--store", store.uri]) == 0  # again: nothing left to convert
    assert json.loads(capsys.readouterr().out)["converted"] == {}


def test_sign_adds_the_current_keys_signature(
    tmp_path: Path,
    bundle_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = LocalStore(tmp_path / "store")
    version = json.loads(bundle_files[MANIFEST_FILE])["version"]
    publish_version(store, version, bundle_files)
    assert fetch_signatures(store, version) == []
    assert main(["sign", "--store", store.uri, "--version", version]) == 0
    assert main(["sign", "--store", store.uri, "--version", version]) == 0  # idempotent
    (signature,) = fetch_signatures(store, version)
    trusted = TrustedKeys.parse(os.environ["FRAUD_TRUSTED_KEYS"])
    assert trusted.verify(sha256_hex(bundle_files[MANIFEST_FILE]), [signature])
    monkeypatch.delenv("FRAUD_SIGNING_KEY_FILE")
    capsys.readouterr()
    assert main(["sign", "--store", store.uri, "--version", version]) == 1
    assert "FRAUD_SIGNING_KEY_FILE" in capsys.readouterr().err
