"""The Gunicorn master's side of the capture shipper: start it, restart it if it dies, and at
exit close its standard input and wait for it to ship the last rows (`service.server.shipper`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

RESTART_DELAY_S = 1.0
# pyarrow on the C library's allocator, which `malloc_trim` empties after each shipment:
# shipping 50 spool files of 15,000 rows left the process at 141 MB with pyarrow's default
# (mimalloc), 98 MB like this.
SHIPPER_ENVIRONMENT = {"ARROW_DEFAULT_MEMORY_POOL": "system"}


class ShipperProcess:
    def __init__(self, on_exit: Callable[[int], None] = lambda pid: None) -> None:
        self._argv = [sys.executable, "-m", "service.server.shipper"]
        self._on_exit = on_exit  # the master marks the process's metrics dead
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._supervise, name="shipper", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        with self._lock:
            if not self._stopping.is_set():
                environment = os.environ | SHIPPER_ENVIRONMENT
                self._process = subprocess.Popen(self._argv, stdin=subprocess.PIPE, env=environment)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            code = process.wait()
            self._on_exit(process.pid)
            if self._stopping.is_set():
                return
            sys.stderr.write(f"fraud-api: capture shipper exited ({code}); restarting it\n")
            time.sleep(RESTART_DELAY_S)
            self._spawn()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def forget_in_child(self) -> None:
        """In a forked worker: drop the copy of the shipper's stdin, or the shipper would not
        see it close until every worker had exited too."""
        process = self._process
        if process is not None and process.stdin is not None:
            process.stdin.close()  # the child's copy; the master's stays open

    def stop(self, timeout_s: float) -> int | None:
        """Close the shipper's stdin (its signal to ship everything and exit) and wait.
        Returns its exit code, or None if it had to be killed."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is None:
            return None
        if process.stdin is not None:
            process.stdin.close()
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None
