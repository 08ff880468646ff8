"""Input files that may live in S3: `s3://bucket/key` is downloaded, anything else is a path."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse


def local_copy(location: str | Path, destination: Path) -> Path:
    text = str(location)
    parsed = urlparse(text)
    if parsed.scheme != "s3":
        return Path(text)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        boto3.client("s3").download_file(parsed.netloc, parsed.path.lstrip("/"), str(destination))
    except (BotoCoreError, ClientError) as exc:
        raise OSError(f"cannot download {text}: {exc}") from None
    return destination
