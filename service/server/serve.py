"""The serving command, in one place. The container runs exactly `SERVE_ARGV` (Dockerfile.api
says it literally and a test holds them equal); `fraudctl serve` execs the same thing."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

SERVE_ARGV = (
    "gunicorn",
    "--config",
    "python:service.server.gunicorn_conf",
    "service.app:app_from_env()",
)


def gunicorn_executable() -> str:
    beside_python = Path(sys.executable).parent / "gunicorn"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("gunicorn")
    if found is None:
        raise FileNotFoundError("gunicorn is not installed in this environment")
    return found


def exec_gunicorn() -> None:
    """Replace this process with Gunicorn, so signals (SIGTERM) reach it directly. Gunicorn's
    config reads everything else from `Settings`."""
    # Fewer malloc arenas: the bundle loads in a worker thread, and each thread's own arena
    # kept ~10 MB per worker after reloads (glibc reads this when the process starts).
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    executable = gunicorn_executable()
    os.execv(executable, [executable, *SERVE_ARGV[1:]])  # noqa: S606 - no shell involved
