"""`S3Reader` (the service's read-only S3 access, without a boto3 client) against moto servers:
it reads what `S3Store` wrote, maps errors as S3Store does, and signs requests that a server
checking SigV4 signatures accepts."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from ml.runtime.s3_reader import S3Reader
from ml.runtime.s3_store import S3Store
from ml.runtime.store import (
    ObjectNotFound,
    ObjectTooLarge,
    Pointer,
    PointerState,
    StoreError,
    StoreTimeouts,
    StoreUnavailable,
    utc_now,
)
from ml.runtime.store_uri import open_reader
from ml.testing.processes import AWS_ENV, free_port, start_moto, stop_process

# Keys whose signing depends on percent-encoding: spaces, '+', '=', non-ASCII, '~'.
ODD_KEYS = ["history/a b+c=d.json", "models/v1/ü~x.json", "models/v1/plain.json"]


def pointer(version: str) -> Pointer:
    return Pointer(
        version=version, manifest_sha256="0" * 64, previous_version=None, promoted_at=utc_now()
    )


def test_reads_what_the_store_wrote(s3_bucket: str) -> None:
    writer = S3Store(s3_bucket, "fraud")
    reader = S3Reader(s3_bucket, "fraud", page_size=2)  # pages of two: the listing continues
    for key in ODD_KEYS:
        writer.put_if_absent(key, key.encode())
    assert [reader.get(key) for key in ODD_KEYS] == [key.encode() for key in ODD_KEYS]
    assert reader.list_keys("models/") == writer.list_keys("models/") == sorted(ODD_KEYS[1:])
    assert reader.list_keys("") == sorted(ODD_KEYS)
    assert reader.list_keys("nothing/") == []


def test_pointer_reads_are_conditional(s3_bucket: str) -> None:
    writer, reader = S3Store(s3_bucket, "fraud"), S3Reader(s3_bucket, "fraud")
    assert reader.current_pointer() == PointerState(None, None)
    first_etag = writer.swap_pointer(pointer("v1"), None)
    state = reader.current_pointer()
    assert (state.pointer and state.pointer.version, state.etag) == ("v1", first_etag)
    assert reader.read_pointer(if_none_match=first_etag) is None  # unchanged: 304
    writer.swap_pointer(pointer("v2"), first_etag)
    changed = reader.read_pointer(if_none_match=first_etag)
    assert changed is not None
    assert changed.pointer is not None
    assert changed.pointer.version == "v2"


def test_errors_name_the_object_as_the_store_does(s3_bucket: str) -> None:
    reader = S3Reader(s3_bucket, "fraud")
    with pytest.raises(ObjectNotFound, match=rf"s3://{s3_bucket}/fraud/models/v9/x\.json"):
        reader.get("models/v9/x.json")
    with pytest.raises(StoreError, match="bucket 'no-such-bucket-y' does not exist"):
        S3Reader("no-such-bucket-y").get("production.json")


def test_an_unreachable_store_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    reader = S3Reader("bucket", timeouts=StoreTimeouts(attempts=2))
    with pytest.raises(StoreUnavailable, match=r"production\.json"):
        reader.current_pointer()


@pytest.fixture
def no_credential_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No keys in the environment, no credential or config files, no instance metadata."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_credential_sources")
def test_without_credentials_the_reader_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable, match="no AWS credentials configured"):
        S3Reader("bucket").get("production.json")


@pytest.mark.usefixtures("no_credential_sources")
def test_a_failing_credential_endpoint_is_a_store_failure_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in ECS when the task-role endpoint does not answer: the reader is made, and each
    read fails as unavailable (which the registry retries)."""
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{free_port()}/")
    reader = S3Reader("bucket")
    with pytest.raises(StoreUnavailable, match="AWS credentials"):
        reader.current_pointer()


def test_the_service_opens_s3_read_only(tmp_path: Path) -> None:
    assert isinstance(open_reader("s3://bucket/some/prefix"), S3Reader)
    assert not isinstance(open_reader(str(tmp_path)), S3Reader)


@pytest.fixture(scope="module")
def signed_bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A moto server that checks every request's SigV4 signature against its IAM users (after
    the three unauthenticated calls that create one), with a bucket that user wrote to."""
    log = tmp_path_factory.mktemp("signing-moto") / "moto.log"
    proc, endpoint = start_moto(log, env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    try:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
        iam.create_user(UserName="reader")
        iam.put_user_policy(
            UserName="reader",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        credentials = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_ENDPOINT_URL_S3": endpoint,
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        s3.create_bucket(Bucket="signed")
        for name in ODD_KEYS:
            s3.put_object(Bucket="signed", Key=f"fraud/{name}", Body=name.encode())
        yield "signed", credentials
    finally:
        stop_process(proc)


def test_a_signature_checking_server_accepts_the_readers_requests(
    signed_bucket: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, credentials = signed_bucket
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    reader = S3Reader(bucket, "fraud", page_size=2)
    assert [reader.get(key) for key in ODD_KEYS] == [key.encode() for key in ODD_KEYS]
    assert reader.list_keys("") == sorted(ODD_KEYS)
    assert reader.current_pointer() == PointerState(None, None)

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StoreError, match="SignatureDoesNotMatch"):
        S3Reader(bucket, "fraud").get(ODD_KEYS[0])


class TricklingStore(threading.Thread):
    """An HTTP server on 127.0.0.1 that answers every GET 200 with no Content-Length, then
    sends its body a few bytes at a time: a store (or something posing as one) that never
    finishes an object."""

    def __init__(self, pause_s: float, chunk: bytes) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pause_s, self.chunk = pause_s, chunk
        self.stopping = threading.Event()

    def run(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                with contextlib.suppress(OSError):
                    for _ in range(200):
                        if self.stopping.is_set():
                            break
                        connection.sendall(self.chunk)
                        time.sleep(self.pause_s)

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        self.listener.close()


@pytest.mark.parametrize(
    ("pause_s", "chunk", "refused"),
    [
        (0.05, b"x" * 4, StoreUnavailable),  # within every read timeout, never done
        (0.0, b"x" * 65536, ObjectTooLarge),  # no Content-Length, more than the limit
    ],
    ids=["trickle", "unbounded"],
)
def test_a_body_that_never_ends_is_refused_by_time_or_size(
    monkeypatch: pytest.MonkeyPatch, pause_s: float, chunk: bytes, refused: type[Exception]
) -> None:
    server = TricklingStore(pause_s, chunk)
    server.start()
    try:
        for key, value in AWS_ENV.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{server.port}")
        reader = S3Reader(
            "bucket",
            timeouts=StoreTimeouts(connect_s=1, read_s=1, attempts=1, total_s=1.0),
            max_object_bytes=1024 * 1024,
        )
        with pytest.raises(refused):
            reader.get("models/v1/manifest.json")
    finally:
        server.stop()
