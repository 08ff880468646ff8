"""The compose walkthrough's step runner, and its decision-log steps (tests/test_compose.py)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

STORE_URI = "s3://fraud-models/fraud"  # docker-compose.yml's default bucket and prefix
EVAL_ROWS = "/app/data/creditcard_eval.csv.gz"  # in the training image


class Steps:
    """Runs and times each step; prints what it did as it goes."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.started = time.monotonic()

    def run(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        began = time.monotonic()
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        self.done(name, began)
        if result.returncode != 0:
            tail = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            raise AssertionError(f"{name}: exit {result.returncode}\n{tail}")
        return result

    def done(self, name: str, began: float) -> None:
        took = time.monotonic() - began
        self.say(f"  [{time.monotonic() - self.started:6.1f}s] {name} ({took:.1f}s)")


def live_quality(steps: Steps, compose: list[str], env: dict[str, str], version: str) -> None:
    """The README's live-quality steps against compose's S3 store: the live F1 of the replayed
    rows equals their offline F1."""
    train = [*compose, "run", "--rm", "train"]
    steps.run(
        "run --rm train replay (the evaluation rows as traffic, with ids; Class as labels)",
        [*train, "replay", EVAL_ROWS, "--url", "http://api:8000", "--store", STORE_URI,
         "--labels-out", "/reports/eval-labels.csv"],
        env=env,
        timeout=300,
    )  # fmt: skip
    steps.run(
        "run --rm train labels import",
        [*train, "labels", "import", "/reports/eval-labels.csv", "--store", STORE_URI],
        env=env,
    )
    live = steps.run(
        "run --rm train evaluate --live",
        [*train, "evaluate", "--live", "--json", "--store", STORE_URI, "--reports-dir", "/reports"],
        env=env,
    )
    measured = {v["model_version"]: v for v in json.loads(live.stdout)["versions"]}
    offline = steps.run(
        "run --rm train evaluate --data (the same rows, offline)",
        [*train, "evaluate", "--data", EVAL_ROWS, "--json", "--store", STORE_URI],
        env=env,
    )
    assert measured[version]["labelled_share"] == 1.0
    expected = json.loads(offline.stdout)["metrics"]["sample_f1"]
    assert abs(measured[version]["f1"] - expected) < 1e-12
