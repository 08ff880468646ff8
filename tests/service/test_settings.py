"""One source of configuration: Gunicorn's config and the workers read `Settings`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ml.testing.processes import REPO

BASE_ENV = {
    "FRAUD_STORE_URI": "/nonexistent",
    "FRAUD_API_KEYS": "k",
    "FRAUD_ADMIN_API_KEYS": "a",
    "FRAUD_TRUSTED_KEYS": "MCowBQYDK2VwAyEAZmFrZS1wdWJsaWMta2V5LTAwMDA=",
}
PROBE = (
    "import service.server.gunicorn_conf as c; "
    "print(c.bind, c.workers, c.graceful_timeout, c.loglevel, c.settings.runtime_dir)"
)


def gunicorn_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    clean.pop("WEB_CONCURRENCY", None)
    clean.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=clean | BASE_ENV | {"FRAUD_RUNTIME_DIR": str(tmp_path)} | env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_gunicorn_reads_its_values_from_settings(tmp_path: Path) -> None:
    result = gunicorn_config(
        tmp_path,
        FRAUD_BIND="127.0.0.1:9001",
        WEB_CONCURRENCY="3",
        FRAUD_GRACEFUL_TIMEOUT_S="12",
        FRAUD_LOG_LEVEL="warning",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["127.0.0.1:9001", "3", "12", "warning", str(tmp_path)]


def test_defaults_are_settings_defaults(tmp_path: Path) -> None:
    result = gunicorn_config(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:4] == ["0.0.0.0:8000", "2", "20", "info"]


def test_bad_settings_stop_gunicorn_naming_the_variable(tmp_path: Path) -> None:
    result = gunicorn_config(tmp_path, WEB_CONCURRENCY="0", FRAUD_GRACEFUL_TIMEOUT_S="45")
    assert result.returncode == 2
    assert "WEB_CONCURRENCY:" in result.stderr
    assert "FRAUD_GRACEFUL_TIMEOUT_S:" in result.stderr


def test_a_runtime_folder_made_by_gunicorn_is_removed_at_exit(tmp_path: Path) -> None:
    probe = (
        "import os, service.server.gunicorn_conf as c; made = c._runtime; "
        "assert made.exists(); c.on_exit(None); print(made.exists())"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    clean.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env=clean | BASE_ENV | {"TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert list(tmp_path.iterdir()) == []


def test_the_placeholder_keys_of_env_example_are_refused(tmp_path: Path) -> None:
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line.startswith("FRAUD_") and "=" in line
    )
    result = gunicorn_config(
        tmp_path,
        FRAUD_API_KEYS=example["FRAUD_API_KEYS"],
        FRAUD_ADMIN_API_KEYS=f"my-own-admin-key,{example['FRAUD_ADMIN_API_KEYS']}",
    )
    assert result.returncode == 2
    assert "FRAUD_API_KEYS: a placeholder from .env.example" in result.stderr
    assert "FRAUD_ADMIN_API_KEYS: a placeholder" in result.stderr
