"""fraudctl retrain (the training image's job) and run-local (what `make run` runs)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ml.cli import main
from ml.runtime.history import read_history
from ml.runtime.local_store import LocalStore
from ml.testing.processes import (
    DEV_DATA,
    EVAL_DATA,
    REPO,
    free_port,
    stop_process,
    wait_for_port,
)
from ml.testing.server import PREDICT_BODY, once


def test_retrain_promotes_then_keeps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRAUD_NOTIFY_URLS", raising=False)
    store = tmp_path / "store"
    argv = [
        "retrain",
        "--store",
        str(store),
        "--data",
        str(DEV_DATA),
        "--eval-data",
        str(EVAL_DATA),
        "--create-store",
    ]
    assert main(argv) == 0
    assert "no production model yet" in capsys.readouterr().err
    assert main(argv) == 3  # the same data and seed: an equal candidate, production kept
    assert main([*argv, "--ok-if-kept"]) == 0
    assert [p.action for p in read_history(LocalStore(store)).entries] == [
        "keep",
        "keep",
        "promote",
    ]


def test_run_local_trains_promotes_and_serves(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env["FRAUD_RUNTIME_DIR"] = str(tmp_path / "runtime")
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ml.cli",
                "run-local",
                "--store",
                str(tmp_path / "store"),
                "--work-dir",
                str(tmp_path / "work"),
                "--keys-dir",
                str(tmp_path / "keys"),
                "--port",
                str(port),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if once(port, "GET", "/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        text = log.read_text()
        assert "PROMOTED" in text
        keys = dict(re.findall(r"generated (FRAUD_\w+)=(\S+)", text))
        assert set(keys) == {"FRAUD_API_KEYS", "FRAUD_ADMIN_API_KEYS"}
        status, body = once(
            port, "POST", "/predict", PREDICT_BODY, {"X-API-Key": keys["FRAUD_API_KEYS"]}
        )
        assert status == 200, body
        assert (tmp_path / "work" / "report" / "pr_curve.png").exists()
        # make run's signing pair, made on first use and kept; the service trusts it.
        assert "made a bundle-signing key pair" in text
        assert (tmp_path / "keys" / "signing.pem").stat().st_mode & 0o777 == 0o600
        assert json.loads((tmp_path / "work" / "report" / "report.json").read_text())["promoted"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_building_the_parser_loads_no_training_stack() -> None:
    """`fraudctl serve` and `--help` start fast: scikit-learn, pandas and matplotlib load only
    in the sub-commands that use them (importing scikit-learn took ~1.5 s of every start)."""
    probe = (
        "import sys; from ml.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('sklearn', 'pandas', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_version_and_a_closed_pipe(tmp_path: Path) -> None:
    version = subprocess.run(
        [sys.executable, "-m", "ml.cli", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.startswith("fraudctl ")
    # `fraudctl history ... | head -1`: the reader goes away; fraudctl ends quietly.
    store = tmp_path / "store"
    store.mkdir()
    history = subprocess.Popen(
        [sys.executable, "-m", "ml.cli", "history", "--store", str(store), "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert history.stdout is not None
    assert history.stderr is not None
    history.stdout.close()  # before it writes: every write meets a closed pipe
    history.wait(timeout=60)
    assert b"Broken pipe" not in history.stderr.read()
    history.stderr.close()


def every_command(parser: Any, prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for action in parser._actions:
        if hasattr(action, "_choices_actions"):
            for name, sub in action.choices.items():
                found.append((f"{prefix}{name}", sub))
                found += every_command(sub, f"{prefix}{name} ")
    return found


def test_every_commands_help_says_its_purpose_defaults_and_exit_codes() -> None:
    from ml.cli import build_parser

    commands = every_command(build_parser())
    assert len(commands) >= 13
    for name, parser in commands:
        text = parser.format_help()
        assert parser.description, f"fraudctl {name}: no one-line purpose"
        assert "exit status: " in text, name
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"fraudctl {name} {action.option_strings[0]}: no help"
    promote = " ".join(dict(commands)["promote"].format_help().split())
    assert "3 production kept" in promote
    assert "(default: 0.0)" in promote  # --min-delta's default, said by the formatter


def test_notify_takes_the_services_admin_keys_variable_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ml.cli.promotion import admin_key_for

    monkeypatch.delenv("FRAUD_ADMIN_API_KEY", raising=False)
    monkeypatch.setenv("FRAUD_ADMIN_API_KEYS", " first-admin , second")
    assert admin_key_for(["http://127.0.0.1:1"], "promote") == "first-admin"
    monkeypatch.setenv("FRAUD_ADMIN_API_KEY", "explicit")
    assert admin_key_for(["http://127.0.0.1:1"], "promote") == "explicit"


def test_a_store_that_does_not_exist_is_refused_unless_asked_to_create_it(
    tmp_path: Path, bundle_files: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    from ml.build import write_bundle

    candidate = tmp_path / "candidate"
    write_bundle(candidate, bundle_files)
    typo = tmp_path / "stor"
    argv = ["promote", "--candidate", str(candidate), "--data", str(EVAL_DATA)]
    assert main([*argv, "--store", str(typo)]) == 1
    assert "does not exist: check the location, or pass --create-store" in capsys.readouterr().err
    assert not typo.exists()
    assert main(["history", "--store", str(typo)]) == 1
    assert main([*argv, "--store", str(typo), "--create-store"]) == 0
    assert main(["history", "--store", str(typo)]) == 0


def test_serve_names_the_setting_when_its_port_is_taken(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err
    assert f"PORT={port + 1} (make run)" in err
    assert "FRAUD_BIND=" in err


def test_serve_honours_fraud_bind(tmp_path: Path, s3_store: Any, bundle_files: Any) -> None:
    from ml.testing.bundles import promote_files

    promote_files(s3_store, bundle_files)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FRAUD_BIND"} | {
        "FRAUD_BIND": f"127.0.0.1:{port}",
        "FRAUD_STORE_URI": s3_store.uri,
        "FRAUD_API_KEYS": "k",
        "FRAUD_ADMIN_API_KEYS": "a",
        "FRAUD_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ml.cli", "serve", "--workers", "1"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=30)
        status, body = once(port, "GET", "/health/live")
        assert status == 200, body
    finally:
        stop_process(proc)


def test_make_runs_api_keys_are_kept_and_printed_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.cli.local import use_local_api_keys

    for name in ("FRAUD_API_KEYS", "FRAUD_ADMIN_API_KEYS"):
        monkeypatch.setenv(name, "")  # recorded, so what the function sets is undone after
        monkeypatch.delenv(name)
    path = tmp_path / "keys" / "api-keys.json"
    use_local_api_keys(path)
    first = capsys.readouterr().err
    predict_key = os.environ["FRAUD_API_KEYS"]
    assert f"generated FRAUD_API_KEYS={predict_key}" in first
    assert path.stat().st_mode & 0o777 == 0o600
    monkeypatch.delenv("FRAUD_API_KEYS")
    monkeypatch.setenv("FRAUD_ADMIN_API_KEYS", "chosen")
    use_local_api_keys(path)  # the next make run
    second = capsys.readouterr().err
    assert predict_key not in second  # printed once only
    assert os.environ["FRAUD_API_KEYS"] == predict_key  # the same key across restarts
    assert os.environ["FRAUD_ADMIN_API_KEYS"] == "chosen"  # the environment wins
    # and start-up says where each came from (it once named the file for keys it did not use)
    assert f"FRAUD_API_KEYS from {path}" in second
    assert "FRAUD_ADMIN_API_KEYS from the environment" in second
    monkeypatch.setenv("FRAUD_API_KEYS", "demo-key")
    use_local_api_keys(path)
    third = capsys.readouterr().err
    assert str(path) not in third
    assert "FRAUD_API_KEYS and FRAUD_ADMIN_API_KEYS from the environment" in third
