"""The console at /ui/: one static page (service/api/ui/), served as files, no build step.

It calls the API from the browser with the key the user types, so the page must not be able to
run anything but its own script or talk to anyone but this service: a strict Content Security
Policy says so, and the script writes API values as text, never as HTML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

UI_DIR = Path(__file__).with_name("ui")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # a new image's console, not yesterday's, after a deploy
}


class ConsoleFiles(StaticFiles):
    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount_console(app: FastAPI) -> None:
    app.mount("/ui", ConsoleFiles(directory=UI_DIR, html=True), name="ui")
