"""API-key authentication: header `X-API-Key`, two scopes, constant-time comparison.

Missing or unknown key: 401. A valid key of the other scope: 403. Keys are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from enum import Enum

from pydantic import SecretStr

from service.errors import Forbidden, Unauthenticated

HEADER = "X-API-Key"


class Scope(Enum):
    PREDICT = "predict"
    ADMIN = "admin"


class KeyRing:
    def __init__(self, predict_keys: Sequence[SecretStr], admin_keys: Sequence[SecretStr]) -> None:
        self._keys = {
            Scope.PREDICT: [k.get_secret_value().encode() for k in predict_keys],
            Scope.ADMIN: [k.get_secret_value().encode() for k in admin_keys],
        }

    def _matches(self, scope: Scope, presented: bytes) -> bool:
        # Compare against every key, without stopping early, so timing reveals nothing.
        found = False
        for key in self._keys[scope]:
            found |= hmac.compare_digest(key, presented)
        return found

    def check(self, presented: str | None, required: Scope) -> None:
        if not presented:
            raise Unauthenticated(f"missing API key: send it in the {HEADER} header")
        candidate = presented.encode()
        if self._matches(required, candidate):
            return
        other = Scope.ADMIN if required is Scope.PREDICT else Scope.PREDICT
        if self._matches(other, candidate):
            raise Forbidden(
                f"this API key has the {other.value!r} scope; this endpoint needs "
                f"{required.value!r}"
            )
        raise Unauthenticated("unknown API key")
