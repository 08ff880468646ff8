"""The README's code blocks, run as a newcomer pastes them after `make run`: in a directory laid
out as a checkout after `make run` (its .local/ store, signing key and API keys), against a real
`fraudctl serve`. Only the addresses change (the test's server is not on port 8000), and
`.venv-run/bin/fraudctl` is this environment's `python -m ml.cli`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml.choices import DEFAULT_PREVALENCE
from ml.data import load_dataset
from ml.promote import evaluate_bundle
from ml.runtime.bundle import load_bundle
from ml.runtime.local_store import LocalStore
from ml.testing.bundles import promote_files
from ml.testing.keys import ADMIN_KEY, API_KEY
from ml.testing.processes import EVAL_DATA, REPO
from ml.testing.server import ServiceProcess, serving

pytestmark = pytest.mark.slow
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


def readme_blocks(language: str, containing: str) -> list[str]:
    blocks = [
        body
        for lang, body in FENCE.findall((REPO / "README.md").read_text())
        if lang == language and containing in body
    ]
    assert blocks, f"no {language} block with {containing!r} in the README"
    return blocks


def commands(block: str) -> list[str]:
    """A shell block's commands, each joined across its line continuations, comments dropped."""
    found: list[str] = []
    pending = ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line[:-1] if line.endswith("\\") else line
        if not line.endswith("\\"):
            found.append(pending)
            pending = ""
    return found


@pytest.fixture
def checkout(tmp_path: Path, strong_files: dict[str, bytes]) -> Path:
    """A directory as a checkout is after `make run`: examples/ and data/, and under .local/
    the store with make run's model promoted, its signing key and API keys."""
    root = tmp_path / "checkout"
    root.mkdir()
    for shared in ("examples", "data"):
        (root / shared).symlink_to(REPO / shared)
    keys = root / ".local" / "keys"
    keys.mkdir(parents=True)
    shutil.copyfile(os.environ["FRAUD_SIGNING_KEY_FILE"], keys / "signing.pem")
    (keys / "api-keys.json").write_text(
        json.dumps({"FRAUD_API_KEYS": API_KEY, "FRAUD_ADMIN_API_KEYS": ADMIN_KEY})
    )
    (root / ".local" / "store").mkdir()
    promote_files(LocalStore(root / ".local" / "store"), strong_files)
    fraudctl = root / ".venv-run" / "bin" / "fraudctl"
    fraudctl.parent.mkdir(parents=True)
    fraudctl.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ml.cli "$@"\n')
    fraudctl.chmod(0o755)
    return root


def as_newcomer(
    argv: list[str], checkout: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """`argv` run in the checkout, in the environment of a shell there: nothing names a store
    or a key (the test session's own signing key and local-dir override are dropped)."""
    env = dict(os.environ)
    for name in ("FRAUD_SIGNING_KEY_FILE", "FRAUD_LOCAL_DIR", "FRAUD_STORE_URI"):
        env.pop(name, None)
    return subprocess.run(
        argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def served(checkout: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    env = {
        "FRAUD_STORE_URI": f"file://{checkout / '.local' / 'store'}",
        "FRAUD_API_KEYS": API_KEY,
        "FRAUD_ADMIN_API_KEYS": ADMIN_KEY,
        "FRAUD_MODEL_POLL_INTERVAL_S": "0",
        "FRAUD_CAPTURE": "1",  # as make run has it
        "FRAUD_CAPTURE_ROTATE_S": "0.5",
    }
    with serving(tmp_path, env) as server:
        yield server


def json_values(text: str) -> list[dict[str, Any]]:
    """The JSON objects curl printed one after another (it adds no newline)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values


def here(text: str, server: ServiceProcess) -> str:
    return re.sub(r"(localhost|127\.0\.0\.1):8000", f"127.0.0.1:{server.port}", text)


def test_the_api_block_runs_as_pasted(checkout: Path, served: ServiceProcess) -> None:
    (block,) = readme_blocks("sh", "curl -s localhost:8000/predict")
    run = as_newcomer(["bash", "-euo", "pipefail", "-c", here(block, served)], checkout, 60)
    assert run.returncode == 0, run.stderr
    answers = json_values(run.stdout)
    assert len(answers) == len(commands(block)) - 1  # every curl, not the line reading the key
    for answer in answers:
        assert "error" not in answer, answer
        assert "model_version" in answer
    assert answers[1]["is_fraud"] is True  # should-flag.json, as the comment says
    assert len(answers[-1]["reasons"]) == 3


def test_the_python_client_block_runs_as_pasted(checkout: Path, served: ServiceProcess) -> None:
    (block,) = readme_blocks("python", "from service.client import")
    # Not in the repository: the client comes from the installed package.
    run = as_newcomer([sys.executable, "-c", here(block, served)], checkout, 60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "3"]


# What each training command may exit with: promote is judged (0 promoted, 3 kept).
TRAINING_EXITS = {"promote": {0, 3}, "retrain": {0, 3}}


def test_the_training_block_runs_as_pasted_in_order(checkout: Path) -> None:
    (block,) = readme_blocks("sh", ".venv-run/bin/fraudctl train")
    steps = commands(block)
    assert [s.split()[1] for s in steps][:3] == ["train", "promote", "promote"]
    for step in steps:
        run = as_newcomer(["bash", "-c", step], checkout, 300)
        allowed = TRAINING_EXITS.get(step.split()[1], {0})
        assert run.returncode in allowed, (step, run.returncode, run.stderr[-2000:])
    log = LocalStore(checkout / ".local" / "store").list_keys("history/")
    actions = sorted(key.split("-")[1] for key in log)
    assert {"force", "rollback"} <= set(actions)  # force-promote, then back


def test_the_live_quality_walkthrough_runs_and_agrees_with_the_offline_f1(
    checkout: Path, served: ServiceProcess, strong_files: dict[str, bytes]
) -> None:
    (block,) = readme_blocks("sh", "fraudctl replay")
    for step in commands(block):
        run = as_newcomer(["bash", "-c", here(step, served)], checkout, 120)
        assert run.returncode == 0, (step, run.stderr[-2000:])
    assert "F1 [95 %]" in run.stdout
    live = as_newcomer(
        [str(checkout / ".venv-run/bin/fraudctl"), "evaluate", "--live", "--json"], checkout, 120
    )
    assert live.returncode == 0, live.stderr
    (version,) = json.loads(live.stdout)["versions"]
    bundle = load_bundle(strong_files)
    offline = evaluate_bundle(bundle, load_dataset(EVAL_DATA), DEFAULT_PREVALENCE).metrics
    assert version["model_version"] == bundle.version
    assert version["labelled_share"] == 1.0
    assert version["f1"] == pytest.approx(offline["sample_f1"], abs=1e-12)
    assert (checkout / "reports" / "live-quality.png").read_bytes()[:4] == b"\x89PNG"
