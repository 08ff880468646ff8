"""`S3Reader`: the service's read-only view of `s3://bucket/prefix`, without a boto3 client.

A boto3 S3 client loads the S3 service model and its endpoint rules: 15 MB in every worker,
a sixth of its memory, for the three calls the service makes (get an object, get the pointer
if it changed, list a prefix). This reader makes those calls itself over urllib3, signed by
botocore's own SigV4 signer with credentials from botocore's own chain (environment, ECS task
role, instance profile, ...), so it authenticates as boto3 would. Promotion and training write
through `S3Store` (boto3), which keeps the conditional writes.

Endpoint: `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`) with path-style addressing, as MinIO
and moto expect; otherwise AWS's regional virtual-hosted endpoint. Errors map to the store's
own, naming the object, like S3Store's.
"""

from __future__ import annotations

import os
import time
from urllib.parse import quote, urlencode
from xml.etree import ElementTree

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError
from botocore.session import Session

from ml.runtime.layout import POINTER_KEY
from ml.runtime.store import (
    DEFAULT_MAX_OBJECT_BYTES,
    POINTER_MAX_BYTES,
    ArtifactReader,
    ObjectNotFound,
    Pointer,
    PointerState,
    StoreError,
    StoreTimeouts,
    StoreUnavailable,
    s3_key_prefix,
)

S3_XML = "{http://s3.amazonaws.com/doc/2006-03-01/}"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
RETRY_PAUSE_S = 0.2
READ_CHUNK_BYTES = 64 * 1024


class S3Reader(ArtifactReader):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        timeouts: StoreTimeouts | None = None,
        page_size: int = 1000,
        max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
    ) -> None:
        self.bucket = bucket
        self.max_object_bytes = max_object_bytes
        self.prefix, self.uri = s3_key_prefix(bucket, prefix)
        self.timeouts = timeouts = timeouts or StoreTimeouts()
        self._attempts = max(1, timeouts.attempts)
        self._page_size = page_size
        self._session = Session()
        # Resolved at the first request, so a credential endpoint that is briefly down at
        # start-up (ECS's) is a store failure the registry retries, not a worker that fails
        # to boot.
        self._credentials: Credentials | None = None
        self._region = self._session.get_config_variable("region") or "us-east-1"
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            self._base = f"{endpoint.rstrip('/')}/{quote(bucket)}"
        elif "." in bucket:  # a dotted name breaks the virtual host's TLS certificate
            self._base = f"https://s3.{self._region}.amazonaws.com/{quote(bucket)}"
        else:
            self._base = f"https://{bucket}.s3.{self._region}.amazonaws.com"
        self._http = urllib3.PoolManager(
            maxsize=4,
            retries=False,  # retried below, where the store's errors are decided
            timeout=urllib3.Timeout(connect=timeouts.connect_s, read=timeouts.read_s),
        )

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        limit = self.read_limit(max_bytes)
        status, body, _ = self._request(self.prefix + key, what=key, limit=limit)
        if status != 200:
            raise self._error(status, body, key)
        return body

    def list_keys(self, prefix: str, limit: int | None = None) -> list[str]:
        keys: list[str] = []
        page_size = self._page_size if limit is None else max(1, min(limit, self._page_size))
        query = {"list-type": "2", "prefix": self.prefix + prefix, "max-keys": str(page_size)}
        while True:
            status, body, _ = self._request("", query=query, what=prefix)
            if status != 200:
                raise self._error(status, body, prefix)
            page = _xml(body, prefix)
            keys.extend(
                element.text[len(self.prefix) :]
                for element in page.iter(f"{S3_XML}Key")
                if element.text is not None
            )
            token = page.findtext(f"{S3_XML}NextContinuationToken")
            if limit is not None and len(keys) >= limit:
                return sorted(keys[:limit])
            if page.findtext(f"{S3_XML}IsTruncated") != "true" or not token:
                return sorted(keys)
            query = query | {"continuation-token": token}

    def read_pointer(self, if_none_match: str | None = None) -> PointerState | None:
        headers = {"If-None-Match": if_none_match} if if_none_match is not None else {}
        status, body, etag = self._request(
            self.prefix + POINTER_KEY, headers, what=POINTER_KEY, limit=POINTER_MAX_BYTES
        )
        if status == 304:
            return None
        if status == 404 and _code(body) != "NoSuchBucket":
            return PointerState(None, None)
        if status != 200:
            raise self._error(status, body, POINTER_KEY)
        return PointerState(Pointer.from_json(body), etag)

    def _request(
        self,
        key: str,
        headers: dict[str, str] | None = None,
        *,
        query: dict[str, str] | None = None,
        what: str,
        limit: int | None = None,
    ) -> tuple[int, bytes, str | None]:
        """One signed GET, retried on 5xx and connection failures: status, body, ETag. The
        body is streamed: past `limit` bytes (the reader's own by default) or the timeouts'
        `total_s`, the connection is dropped and the object refused."""
        limit = self.max_object_bytes if limit is None else limit
        url = f"{self._base}/{quote(key, safe='/~')}"
        if query:
            url += "?" + urlencode(sorted(query.items()), quote_via=quote)
        for attempt in range(1, self._attempts + 1):
            signed = self._signed(url, headers or {}, what)
            try:
                response = self._http.request("GET", url, headers=signed, preload_content=False)
                body = self._read_body(response, limit, what)
            except urllib3.exceptions.HTTPError as exc:
                if attempt == self._attempts:
                    raise StoreUnavailable(f"{self.uri}/{what}: {exc}") from None
                time.sleep(RETRY_PAUSE_S)
                continue
            if response.status in RETRY_STATUSES and attempt < self._attempts:
                time.sleep(RETRY_PAUSE_S)
                continue
            return response.status, body, response.headers.get("ETag")
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _read_body(self, response: urllib3.BaseHTTPResponse, limit: int, what: str) -> bytes:
        try:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise self.too_large(what, int(declared), limit)
            deadline = time.monotonic() + self.timeouts.total_s
            chunks: list[bytes] = []
            received = 0
            for chunk in response.stream(READ_CHUNK_BYTES):
                received += len(chunk)
                if received > limit:
                    raise self.too_large(what, f"over {limit}", limit)
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"{self.uri}/{what}: not read within {self.timeouts.total_s} s"
                    )
                chunks.append(chunk)
        except BaseException:
            response.close()  # bytes left unread on it: dropped, never handed back to the pool
            raise
        response.release_conn()
        return b"".join(chunks)

    def _signed(self, url: str, headers: dict[str, str], what: str) -> dict[str, str]:
        if self._credentials is None:
            try:
                self._credentials = self._session.get_credentials()
            except BotoCoreError as exc:  # the chain found a source that failed to answer
                raise StoreUnavailable(f"{self.uri}/{what}: AWS credentials: {exc}") from None
        if self._credentials is None:
            raise StoreUnavailable(f"{self.uri}/{what}: no AWS credentials configured")
        request = AWSRequest(method="GET", url=url, headers=headers)
        # Frozen: a refreshing credential (an ECS task role) is renewed here when due.
        frozen = self._credentials.get_frozen_credentials()
        S3SigV4Auth(frozen, "s3", self._region).add_auth(request)
        return dict(request.headers.items())

    def _error(self, status: int, body: bytes, what: str) -> StoreError:
        where = f"{self.uri}/{what}"
        code = _code(body)
        if code == "NoSuchBucket":
            return StoreError(f"bucket {self.bucket!r} does not exist")
        if status == 404:
            return ObjectNotFound(f"{where} does not exist")
        if status in RETRY_STATUSES:
            return StoreUnavailable(f"{where}: {code or status}")
        return StoreError(f"{where}: {code or status}")


# S3's own answers (object contents are never parsed as XML), read with the standard library as
# botocore reads them; expat >= 2.4 (2.5 here) bounds entity expansion, and ElementTree
# resolves no external entities.
def _xml(body: bytes, what: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(body)  # noqa: S314
    except ElementTree.ParseError as exc:
        raise StoreError(f"{what}: the store answered with malformed XML ({exc})") from None


def _code(body: bytes) -> str:
    """S3's error code (`NoSuchKey`, `AccessDenied`, ...) from an error body; '' if none."""
    try:
        return ElementTree.fromstring(body).findtext("Code") or ""  # noqa: S314
    except ElementTree.ParseError:
        return ""
