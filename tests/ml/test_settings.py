"""The training side's settings: one object every fraudctl command reads, and a bad value
reported before any work, naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.cli import build_parser, main
from ml.cli.output import EXIT_USAGE
from ml.settings import load_training_settings


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_SEED", "7")
    monkeypatch.setenv("FRAUD_PREVALENCE", "0.01")
    monkeypatch.setenv("FRAUD_MIN_DELTA", "0.02")
    monkeypatch.setenv("FRAUD_STORE_URI", "file:///tmp/somewhere")
    args = build_parser().parse_args(["retrain"])
    assert (args.seed, args.prevalence, args.min_delta) == (7, 0.01, 0.02)
    assert args.store == "file:///tmp/somewhere"
    assert (
        build_parser()
        .parse_args(["promote", "--candidate", "c", "--data", "d", "--store", "s"])
        .min_delta
        == 0.02
    )


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_SEED", "")
    assert load_training_settings().seed == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FRAUD_SEED", "abc"), ("FRAUD_PREVALENCE", "2"), ("FRAUD_MAX_PRAUC_DROP", "-1")],
)
def test_a_bad_value_stops_every_command_at_once_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    out = tmp_path / "bundle"
    code = main(["train", "--data", "data/creditcard_train.csv.gz", "--out", str(out)])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert variable in err
    assert repr(value) in err
    assert not out.exists()  # refused before training began


def test_the_notify_key_falls_back_to_the_services_first_admin_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FRAUD_ADMIN_API_KEY", raising=False)
    monkeypatch.setenv("FRAUD_ADMIN_API_KEYS", " first , second")
    assert load_training_settings().notify_key() == "first"
    monkeypatch.setenv("FRAUD_ADMIN_API_KEY", "own")
    assert load_training_settings().notify_key() == "own"


def test_the_signing_key_is_read_through_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ml.errors import PromotionError
    from ml.signing import signing_key_from_env

    monkeypatch.setenv("FRAUD_SIGNING_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(PromotionError, match="FRAUD_SIGNING_KEY_FILE="):
        signing_key_from_env()


def test_after_make_run_the_local_store_and_key_are_the_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FRAUD_SIGNING_KEY_FILE", raising=False)
    monkeypatch.setenv("FRAUD_LOCAL_DIR", str(tmp_path / ".local"))
    with pytest.raises(SystemExit):  # nothing local yet: --store is required
        build_parser().parse_args(["history"])
    (tmp_path / ".local" / "store").mkdir(parents=True)
    (tmp_path / ".local" / "keys").mkdir()
    (tmp_path / ".local" / "keys" / "signing.pem").write_text("")
    settings = load_training_settings()
    assert settings.store_uri == f"file://{tmp_path / '.local' / 'store'}"
    assert settings.signing_key_file == tmp_path / ".local" / "keys" / "signing.pem"
    assert build_parser().parse_args(["history"]).store == settings.store_uri
    monkeypatch.setenv("FRAUD_STORE_URI", "s3://bucket/fraud")  # what is named wins
    assert load_training_settings().store_uri == "s3://bucket/fraud"


def test_a_missing_signing_key_stops_promote_before_any_data_is_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("FRAUD_SIGNING_KEY_FILE", raising=False)
    candidate = tmp_path / "candidate"
    candidate.mkdir()  # empty: reading it would fail differently
    data = tmp_path / "eval.csv"
    data.write_text("not a csv the promotion would get to read")
    argv = ["promote", "--candidate", str(candidate), "--data", str(data), "--store", "x"]
    assert main(argv) == 1
    assert "signing needs the private key" in capsys.readouterr().err
