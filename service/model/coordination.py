"""How a reload reaches every worker of a task.

Gunicorn workers are separate processes; a `/reload` lands in one of them. They share a
directory (made and wiped by the Gunicorn master at start):

    target.json         the version the last /reload installed, written atomically
    worker-<pid>.json   the version each live worker serves, written after every swap

The worker that handled /reload writes `target.json`; every worker checks its mtime a few times
a second (a local stat, no network) and, when it changes, loads that version from the store and
verifies it like any other load. The reloading worker then waits until every live worker's file
names the new version before it answers. The master deletes a worker's file when the worker
exits, so a dead worker is never waited for.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET_FILE = "target.json"
WORKER_PREFIX = "worker-"


@dataclass(frozen=True)
class Target:
    version: str
    manifest_sha256: str
    stamp: int  # mtime_ns of target.json: changes on every announcement


def _write_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(json.dumps(payload).encode())
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PeerChannel:
    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.directory = directory
        self.pid = pid if pid is not None else os.getpid()
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def _own_file(self) -> Path:
        return self.directory / f"{WORKER_PREFIX}{self.pid}.json"

    def announce(self, version: str, manifest_sha256: str) -> None:
        _write_atomic(
            self.directory / TARGET_FILE,
            {
                "version": version,
                "manifest_sha256": manifest_sha256,
                "by": self.pid,
                "at": time.time(),
            },
        )

    def target(self) -> Target | None:
        path = self.directory / TARGET_FILE
        try:
            stamp = path.stat().st_mtime_ns
            data = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return Target(data["version"], data["manifest_sha256"], stamp)

    def confirm(self, version: str) -> None:
        _write_atomic(self._own_file, {"version": version, "pid": self.pid, "at": time.time()})

    def leave(self) -> None:
        remove_worker(self.directory, self.pid)

    def served_versions(self) -> dict[int, str]:
        """Version served by each live worker of this task."""
        served = {}
        for path in self.directory.glob(f"{WORKER_PREFIX}*.json"):
            try:
                data = json.loads(path.read_bytes())
            except (FileNotFoundError, ValueError):
                continue
            if _alive(int(data["pid"])):
                served[int(data["pid"])] = str(data["version"])
        return served

    async def wait_for(self, version: str, timeout: float) -> tuple[int, int]:
        """Wait until every live worker serves `version`; return (confirmed, total)."""
        deadline = time.monotonic() + timeout
        while True:
            served = self.served_versions()
            confirmed = sum(1 for v in served.values() if v == version)
            if confirmed == len(served) or time.monotonic() >= deadline:
                return confirmed, len(served)
            await asyncio.sleep(0.05)


def remove_worker(directory: Path, pid: int) -> None:
    (directory / f"{WORKER_PREFIX}{pid}.json").unlink(missing_ok=True)
