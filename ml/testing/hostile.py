"""What an attacker sends and writes, shared by the reliability tests and `make bench-hostile`:
request bodies that once answered 500 or held a worker's loop for seconds, and store objects
that once crashed a reload, blocked it, or took a worker to 1 GB."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ml.runtime.layout import MANIFEST_FILE, POINTER_KEY, signature_key, version_key
from ml.runtime.local_store import LocalStore
from ml.runtime.s3_store import S3Store
from ml.runtime.store import ArtifactStore, Pointer, utc_now
from ml.testing.server import ServiceProcess

ROW = b"[" + b",".join([b"0.5"] * 30) + b"]"
DEEP = b"[" * 20_000 + b"]" * 20_000  # 40 KB: under every size limit, past every parser's depth
GIB = 1024**3


def many_keys(n: int) -> bytes:
    return b"{" + b",".join(b'"k%d":1' % i for i in range(n)) + b"}"


@dataclass(frozen=True)
class HostileBody:
    name: str
    path: str
    body: bytes
    status: int
    says: str  # in the answer's error message


HOSTILE_BODIES = (
    HostileBody(
        "bigint-row",
        "/predict/batch",
        b'{"transactions": [[100000000000000000000]]}',
        422,
        "transactions[0]",
    ),
    HostileBody(  # what schemathesis found: an integer beyond 64 bits deep inside a named row
        "bigint-nested",
        "/predict/batch",
        b'{"transactions": [{"V16": true, "V22": [{"x": [118229701628011495424]}]}]}',
        422,
        "transactions[0]",
    ),
    HostileBody(
        "bigint-threshold",
        "/predict/batch",
        b'{"transactions": [' + ROW + b'], "threshold": 100000000000000000000}',
        422,
        "threshold",
    ),
    HostileBody(
        "deep-batch",
        "/predict/batch",
        b'{"transactions": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        400,
        "JSON",
    ),
    HostileBody(
        "deep-predict",
        "/predict",
        b'{"features": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        400,
        "JSON",
    ),
    HostileBody(
        "1e6-scalar-rows",
        "/predict/batch",
        b'{"transactions": [' + b",".join([b"1"] * 1_000_000) + b"]}",
        413,
        "transactions has 1000000 rows; the limit is FRAUD_MAX_BATCH_ROWS=1000",
    ),
    HostileBody(
        "650k-empty-rows",
        "/predict/batch",
        b'{"transactions": [' + b",".join([b'""'] * 650_000) + b"]}",
        413,
        "transactions has 650000 rows",
    ),
    HostileBody(
        "180k-key-row",
        "/predict/batch",
        b'{"transactions": [' + many_keys(180_000) + b"]}",
        422,
        "transactions[0]: at most 60 keys are read here",
    ),
    HostileBody(
        "180k-key-transaction",
        "/predict",
        b'{"transaction": ' + many_keys(180_000) + b"}",
        422,
        "transaction: at most 60 keys are read here",
    ),
    HostileBody("180k-key-body", "/predict", many_keys(180_000), 422, "body: at most 60 keys"),
    HostileBody(
        "500k-features",
        "/predict",
        b'{"features": [' + b",".join([b"1"] * 500_000) + b"]}",
        422,
        "features: at most 60 items are read here",
    ),
)


# --- the store --------------------------------------------------------------------------------


def write_pointer_bytes(store: ArtifactStore, data: bytes) -> None:
    """production.json written byte for byte, outside promotion's compare-and-swap, as
    restoring a backup or an earlier S3 object version does (the same bytes: the same ETag)."""
    if isinstance(store, LocalStore):
        temporary = store.root / ".restore"
        temporary.write_bytes(data)
        temporary.replace(store.root / POINTER_KEY)
    else:
        assert isinstance(store, S3Store)
        store._client.put_object(  # its boto3 client: an unconditional write
            Bucket=store.bucket, Key=store.prefix + POINTER_KEY, Body=data
        )


def served_by_worker(server: ServiceProcess) -> dict[str, str]:
    """pid -> the version each live worker serves, from the master's metrics."""
    served = {}
    for line in server.metrics().splitlines():
        if line.startswith("fraud_model_info{") and line.endswith(" 1.0"):
            labels = dict(
                part.split("=", 1) for part in line[len("fraud_model_info{") : -5].split(",")
            )
            served[labels["pid"].strip('"')] = labels["version"].strip('"')
    return served


def _point_at(store: LocalStore, version: str, manifest_sha256: str) -> None:
    state = store.current_pointer()
    store.swap_pointer(Pointer(version, manifest_sha256, None, utc_now()), state.etag)


def _fake_version(store: LocalStore, name: str) -> str:
    (store.root / version_key(name, "")).mkdir(parents=True)
    return name


def nested_pointer(store: LocalStore, other_manifest: bytes) -> None:
    write_pointer_bytes(store, DEEP)


def wrongly_typed_pointer(store: LocalStore, other_manifest: bytes) -> None:
    write_pointer_bytes(
        store,
        b'{"version": ["x"], "manifest_sha256": 1, "previous_version": null, "promoted_at": 3}',
    )


def nested_manifest(store: LocalStore, other_manifest: bytes) -> None:
    version = _fake_version(store, f"v-nested-{os.urandom(4).hex()}")
    (store.root / version_key(version, MANIFEST_FILE)).write_bytes(DEEP)
    _point_at(store, version, hashlib.sha256(DEEP).hexdigest())


def nested_signature(store: LocalStore, other_manifest: bytes) -> None:
    """Another model's manifest, "signed" by a file nested too deeply to read."""
    version = _fake_version(store, f"v-nested-signature-{os.urandom(4).hex()}")
    (store.root / version_key(version, MANIFEST_FILE)).write_bytes(other_manifest)
    signature = store.root / signature_key(version, "0000000000000000")
    signature.parent.mkdir()
    signature.write_bytes(DEEP)
    _point_at(store, version, hashlib.sha256(other_manifest).hexdigest())


def sparse_gib_manifest(store: LocalStore, other_manifest: bytes) -> None:
    version = _fake_version(store, f"v-huge-{os.urandom(4).hex()}")
    with open(store.root / version_key(version, MANIFEST_FILE), "wb") as handle:
        handle.truncate(GIB)
    _point_at(store, version, "0" * 64)


def fifo_manifest(store: LocalStore, other_manifest: bytes) -> None:
    version = _fake_version(store, f"v-fifo-{os.urandom(4).hex()}")
    os.mkfifo(store.root / version_key(version, MANIFEST_FILE))
    _point_at(store, version, "0" * 64)


# name -> (what writes it, given the store and another bundle's manifest; the code /reload answers)
STORE_DAMAGE: dict[str, tuple[Callable[[LocalStore, bytes], None], str]] = {
    "nested-pointer": (nested_pointer, "invalid_pointer"),
    "wrongly-typed-pointer": (wrongly_typed_pointer, "invalid_pointer"),
    "nested-manifest": (nested_manifest, "invalid_manifest"),
    "nested-signature": (nested_signature, "bad_signature"),
    "sparse-1-gib-manifest": (sparse_gib_manifest, "object_refused"),
    "fifo-manifest": (fifo_manifest, "object_refused"),
}


def worker_rss_mb(server: ServiceProcess) -> list[float]:
    sizes = []
    for pid in server.worker_pids():
        status = Path(f"/proc/{pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        sizes.append(int(kib) / 1024)
    return sizes
