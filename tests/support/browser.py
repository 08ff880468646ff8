"""Debian's `chromium`, headless, driven over the Chrome DevTools Protocol: a real browser
running the console's own script, with no driver binary and no browser download.

Installed with apt-get when missing and the tests run as root (as CI does); a Chrome already on
PATH (GitHub's runners) serves too; otherwise the test that needs it is skipped, saying why.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from ml.testing.processes import stop_process

# Debian's name first; GitHub's Ubuntu runners carry Google Chrome under its own name.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium_binary() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed, and installing it needs root")
    subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, timeout=300)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
        check=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium, but it is not on PATH"
    return found


class Browser:
    """One headless Chromium with one page; a context manager that stops it by its PID."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 1000) -> None:
        self.proc = subprocess.Popen(
            [
                chromium_binary(),
                "--headless=new",
                "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        self._profile = profile
        self._stack = contextlib.ExitStack()
        self._stack.callback(stop_process, self.proc)

    def __enter__(self) -> Browser:
        try:
            self._socket = self._stack.enter_context(connect(self._page_socket(), max_size=2**26))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def _page_socket(self) -> str:
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30.0
        while not port_file.exists() or not port_file.read_text().strip():
            assert self.proc.poll() is None, f"chromium exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            pages = [t for t in json.load(reply) if t["type"] == "page"]
        url: str = pages[0]["webSocketDebuggerUrl"]
        return url

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events meanwhile are dropped)."""
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=30))
            if message.get("id") != message_id:
                continue
            assert "error" not in message, f"{method}: {message['error']}"
            result: dict[str, Any] = message["result"]
            return result

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.1)

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def screenshot(self, path: Path) -> None:
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
