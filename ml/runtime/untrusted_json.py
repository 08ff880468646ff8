"""JSON read from the store, where anyone who can write the bucket can write anything.

`json.loads` raises `RecursionError` (not a `ValueError`) on nesting a few thousand levels
deep, and `UnicodeDecodeError` on bytes that are not text: a pointer or signature file of
`[[[[...` once crashed `/reload` with a 500 and the poll loop with it. Every store object is
parsed here, so each reader handles one exception.
"""

from __future__ import annotations

import json
from typing import Any


class NotJsonObject(ValueError):
    """The bytes are not a JSON object; the message says why."""


def parse_object(data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except RecursionError:
        raise NotJsonObject("nested too deeply to be read") from None
    except ValueError as exc:  # UnicodeDecodeError is one
        raise NotJsonObject(f"not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise NotJsonObject(f"a JSON {type(parsed).__name__}, not an object")
    return parsed
