"""`S3Store`: `s3://bucket/prefix`, with conditional writes for create-only and compare-and-swap."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ml.runtime.layout import POINTER_KEY
from ml.runtime.store import (
    WRITER_MAX_OBJECT_BYTES,
    ArtifactStore,
    NotModified,
    ObjectExists,
    ObjectNotFound,
    Pointer,
    PointerConflict,
    PointerState,
    StoreError,
    StoreTimeouts,
    StoreUnavailable,
    s3_key_prefix,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3Store(ArtifactStore):
    """`s3://bucket/prefix`. One boto3 client, made once and reused (it is thread-safe).
    Honours `AWS_ENDPOINT_URL_S3` (moto, MinIO) through boto3's own configuration."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: S3Client | None = None,
        *,
        timeouts: StoreTimeouts | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix, self.uri = s3_key_prefix(bucket, prefix)
        self._client = (
            client if client is not None else _make_s3_client(timeouts or StoreTimeouts())
        )

    def exists(self) -> bool:
        try:
            with self._errors(""):
                self._client.head_bucket(Bucket=self.bucket)
        except ObjectNotFound:
            return False
        return True

    def _key(self, key: str) -> str:
        return self.prefix + key

    max_object_bytes = WRITER_MAX_OBJECT_BYTES

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        limit = self.read_limit(max_bytes)
        with self._errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            if response["ContentLength"] > limit:
                response["Body"].close()
                raise self.too_large(key, response["ContentLength"], limit)
            return response["Body"].read()

    def put_if_absent(self, key: str, data: bytes) -> None:
        try:
            with self._errors(key):
                self._client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
                )
        except PointerConflict:
            raise ObjectExists(f"{self.uri}/{key} already exists") from None

    def list_keys(self, prefix: str, limit: int | None = None) -> list[str]:
        keys: list[str] = []
        with self._errors(prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=self._key(prefix),
                PaginationConfig={"MaxItems": limit} if limit is not None else {},
            )
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        return sorted(keys[:limit] if limit is not None else keys)

    def read_pointer(self, if_none_match: str | None = None) -> PointerState | None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(POINTER_KEY)}
        if if_none_match is not None:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            with self._errors(POINTER_KEY):
                response = self._client.get_object(**kwargs)
        except ObjectNotFound:
            return PointerState(None, None)
        except NotModified:
            return None
        return PointerState(Pointer.from_json(response["Body"].read()), response["ETag"])

    def swap_pointer(self, pointer: Pointer, expected_etag: str | None) -> str:
        condition = {"IfNoneMatch": "*"} if expected_etag is None else {"IfMatch": expected_etag}
        with self._errors(POINTER_KEY):
            response = self._client.put_object(
                Bucket=self.bucket,
                Key=self._key(POINTER_KEY),
                Body=pointer.to_json(),
                ContentType="application/json",
                **condition,  # type: ignore[arg-type]
            )
        return response["ETag"]

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Translate botocore's exceptions into the store's, naming the object."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"{self.uri}/{key}"
        try:
            yield
        except ClientError as exc:
            status = _status(exc)
            code = exc.response.get("Error", {}).get("Code", "")
            if status == 304:
                raise NotModified(f"{where} not modified") from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFound(f"{where} does not exist") from None
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise PointerConflict(f"{where} changed since it was read ({code})") from None
            if code == "NoSuchBucket":
                raise StoreError(f"bucket {self.bucket!r} does not exist") from None
            raise StoreError(f"{where}: {code or status}: {exc}") from None
        except NoCredentialsError:
            raise StoreUnavailable(f"{where}: no AWS credentials configured") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"{where}: {exc}") from None


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _make_s3_client(timeouts: StoreTimeouts) -> S3Client:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": timeouts.attempts, "mode": "standard"},
        connect_timeout=timeouts.connect_s,
        read_timeout=timeouts.read_s,
        max_pool_connections=16,
    )
    return boto3.session.Session().client("s3", config=config)
