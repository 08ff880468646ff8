"""Tell running services to reload after a promotion: POST /reload with the admin key.

Best effort by design: each service also polls production.json, so a failed notification
delays convergence but never loses it. Failures are reported, never raised.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


def reload_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/reload") else f"{url}/reload"


def notify_reload(
    url: str,
    admin_key: str,
    *,
    attempts: int = 4,
    first_delay_s: float = 0.5,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    target = reload_url(url)
    if not target.startswith(("http://", "https://")):
        return {"url": target, "ok": False, "attempts": 0, "error": "not an http(s) URL"}
    delay = first_delay_s
    error = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            target, method="POST", headers={"X-API-Key": admin_key}, data=b""
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                body = json.loads(response.read() or b"{}")
                return {
                    "url": target,
                    "ok": True,
                    "attempts": attempt,
                    "status": response.status,
                    "response": body,
                }
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
            if 400 <= exc.code < 500:  # the key or the URL is wrong: retrying will not help
                break
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        if attempt < attempts:
            time.sleep(delay)
            delay *= 2.0
    return {"url": target, "ok": False, "attempts": attempt, "error": error}
