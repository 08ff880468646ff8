"""API-key authentication: header `X-API-Key`, two scopes, constant-time comparison.

Missing or unknown key: 401. A valid key of the other scope: 403. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from enum import Enum

from pydantic import SecretStr

from service.errors import Forbidden, Unauthenticated

HEADER = "X-API-Key"


class Scope(Enum):
    PREDICT = "predict"
    ADMIN = "admin"


def key_id(key: bytes) -> str:
    """What the decision log records of a key: the first 12 hex digits of its SHA-256, enough
    to tell a client's keys apart and nothing to recover one from."""
    return hashlib.sha256(key).hexdigest()[:12]


class KeyRing:
    def __init__(self, predict_keys: Sequence[SecretStr], admin_keys: Sequence[SecretStr]) -> None:
        self._keys = {
            Scope.PREDICT: [k.get_secret_value().encode() for k in predict_keys],
            Scope.ADMIN: [k.get_secret_value().encode() for k in admin_keys],
        }
        self._ids = {scope: [key_id(k) for k in keys] for scope, keys in self._keys.items()}

    def _match(self, scope: Scope, presented: bytes) -> str | None:
        # Compare against every key, without stopping early, so timing reveals nothing.
        found = None
        for key, identity in zip(self._keys[scope], self._ids[scope], strict=True):
            if hmac.compare_digest(key, presented):
                found = identity
        return found

    def check(self, presented: str | None, required: Scope) -> str:
        """The presented key's id (`key_id`) if it has the scope; else the error to answer."""
        if not presented:
            raise Unauthenticated(f"missing API key: send it in the {HEADER} header")
        candidate = presented.encode()
        found = self._match(required, candidate)
        if found is not None:
            return found
        other = Scope.ADMIN if required is Scope.PREDICT else Scope.PREDICT
        if self._match(other, candidate) is not None:
            raise Forbidden(
                f"this API key has the {other.value!r} scope; this endpoint needs "
                f"{required.value!r}"
            )
        raise Unauthenticated("unknown API key")
