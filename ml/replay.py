"""Replaying labelled rows as traffic: the local walkthrough's first step.

Sends a creditcard.csv-format file to a running service's /predict/batch, each row with its own
transaction id, so the decision log captures them under ids that labels can name. A plain
`http.client` loop, not the service's Python client: nothing under ml imports the service.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from urllib.parse import urlsplit

from ml.runtime.schema import FEATURE_NAMES


class ReplayError(Exception):
    """The service refused a batch; the message carries its answer."""


def replay(
    url: str, api_key: str, ids: Sequence[str], rows: list[list[float]], batch_rows: int
) -> int:
    """Send every row; returns how many the service flagged."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"--url must be http://host[:port], got {url!r}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    flagged = 0
    try:
        for start in range(0, len(rows), batch_rows):
            batch = [
                {"id": tid, **dict(zip(FEATURE_NAMES, row, strict=True))}
                for tid, row in zip(
                    ids[start : start + batch_rows], rows[start : start + batch_rows], strict=True
                )
            ]
            body = json.dumps({"transactions": batch}).encode()
            connection.request("POST", f"{parts.path.rstrip('/')}/predict/batch", body, headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise ReplayError(
                    f"rows {start}-{start + len(batch) - 1}: {response.status} {answer[:300]!r}"
                )
            flagged += sum(p["is_fraud"] for p in json.loads(answer)["predictions"])
    finally:
        connection.close()
    return flagged
