"""`fraudctl retrain`, `run-local` and `serve`: the jobs that run whole pipelines.

`serve` hands over to `python -m service` (exec, not import): `ml` never imports the service.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ml.cli.options import (
    add_create_store,
    add_prauc_gate,
    add_training,
    existing_store,
)
from ml.cli.output import (
    EXIT_ERROR,
    EXIT_KEPT,
    EXIT_OK,
    EXIT_USAGE,
    print_json,
    say,
)
from ml.cli.promotion import add_notify_option, admin_key_for, exit_code, promotion_options
from ml.cli.training import training_options

if TYPE_CHECKING:
    from ml.settings import TrainingSettings
from ml.choices import EVAL_DATA, TRAIN_DATA


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], settings: TrainingSettings
) -> None:
    serve = commands.add_parser(
        "serve", help="serve the production model (Gunicorn + Uvicorn workers; FRAUD_* settings)"
    )
    add_serving_options(serve)
    serve.set_defaults(handler=cmd_serve)

    retrain = commands.add_parser(
        "retrain",
        help="train, then compare-and-promote (the training image's job; FRAUD_* defaults)",
    )
    retrain.add_argument(
        "--data",
        default=settings.train_data,
        help="training CSV: a path or s3://bucket/key (FRAUD_TRAIN_DATA; default %(default)s)",
    )
    retrain.add_argument(
        "--eval-data",
        default=settings.eval_data,
        help="evaluation CSV for the comparison, rows no model trained on (FRAUD_EVAL_DATA; "
        "default %(default)s)",
    )
    retrain.add_argument(
        "--store",
        default=settings.store_uri,
        required=settings.store_uri is None,
        help="(FRAUD_STORE_URI)",
    )
    add_training(retrain, settings)
    retrain.add_argument(
        "--min-delta",
        type=float,
        default=settings.min_delta,
        help="required F1 gain over production (FRAUD_MIN_DELTA)",
    )
    retrain.add_argument("--allow-overlap", action="store_true", help="see promote")
    add_prauc_gate(retrain, settings)
    add_create_store(retrain)
    add_notify_option(retrain, extra_help="; also FRAUD_NOTIFY_URLS, comma-separated")
    retrain.add_argument(
        "--report-dir",
        type=Path,
        default=settings.report_dir,
        help="write the promotion report here (FRAUD_REPORT_DIR)",
    )
    retrain.add_argument(
        "--ok-if-kept", action="store_true", help="exit 0 instead of 3 when production is kept"
    )
    retrain.add_argument(
        "--keys-dir",
        type=Path,
        default=settings.keys_dir,
        help="sign with DIR/signing.pem, made there on first use (FRAUD_KEYS_DIR; compose); "
        "default: the key in FRAUD_SIGNING_KEY_FILE / FRAUD_SIGNING_KEY(_SECRET)",
    )
    retrain.add_argument(
        "--public-key-out",
        type=Path,
        default=settings.public_key_out,
        help="with --keys-dir: also copy signing.pub here, for a service that must not see "
        "the private key (FRAUD_PUBLIC_KEY_OUT; compose's trusted-keys volume)",
    )
    retrain.set_defaults(handler=cmd_retrain)

    local = commands.add_parser(
        "run-local",
        help="train and promote into a local store if it has no production model, then serve",
    )
    local.add_argument("--store", default=".local/store", help="the local store")
    local.add_argument("--data", type=Path, default=Path(TRAIN_DATA), help="training CSV")
    local.add_argument(
        "--eval-data", type=Path, default=Path(EVAL_DATA), help="evaluation CSV for promotion"
    )
    local.add_argument(
        "--work-dir", type=Path, default=Path(".local/work"), help="candidate bundles go here"
    )
    local.add_argument(
        "--keys-dir",
        type=Path,
        default=Path(".local/keys"),
        help="the signing key pair, made on first use: promotions sign, the service trusts it",
    )
    add_serving_options(local)
    local.set_defaults(handler=cmd_run_local)


def serve_main(argv: list[str]) -> int:
    """`fraudctl serve` without the whole CLI: it execs the service at once, whose own
    `Settings` validate. Building the full parser loads the training settings (pydantic-
    settings, ~150 ms), which every cold start paid: 1.02 -> 1.15 s to ready."""
    parser = argparse.ArgumentParser(
        prog="fraudctl serve",
        description="serve the production model (Gunicorn + Uvicorn workers; FRAUD_* settings)",
    )
    add_serving_options(parser)
    return cmd_serve(parser.parse_args(argv))


def add_serving_options(parser: argparse.ArgumentParser) -> None:
    # Locally the service listens on loopback; the container's 0.0.0.0 is Settings' default.
    parser.add_argument("--host", help=f"default: from FRAUD_BIND, else {LOCAL_HOST}")
    parser.add_argument(
        "--port", type=int, help=f"default: from FRAUD_BIND, else {LOCAL_PORT} (make run: PORT=)"
    )
    parser.add_argument(
        "--workers", type=int, help="Gunicorn workers (default: WEB_CONCURRENCY, else 2)"
    )


def cmd_retrain(args: argparse.Namespace) -> int:
    """Train, then compare-and-promote: the training image's default job."""
    import tempfile

    from ml.remote import local_copy
    from ml.workflow import train_and_promote

    if args.keys_dir is not None:
        public = use_local_keys(args.keys_dir)
        if args.public_key_out is not None:
            args.public_key_out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(public, args.public_key_out / public.name)
    elif args.public_key_out is not None:
        say("fraudctl retrain: --public-key-out needs --keys-dir (FRAUD_KEYS_DIR)")
        return EXIT_USAGE
    from ml.settings import load_training_settings

    notify = [*load_training_settings().notify_urls, *args.notify]
    admin_key = admin_key_for(notify, "retrain")
    if admin_key is None:
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="fraud-retrain-") as tmp:
        train_data = local_copy(args.data, Path(tmp) / "train.csv")
        eval_data = local_copy(args.eval_data, Path(tmp) / "eval.csv")
        result = train_and_promote(
            train_data,
            eval_data,
            existing_store(args.store, create=args.create_store),
            promotion_options(args, notify, admin_key),
            training_options(args),
            progress=say,
        )
    print_json(result.decision.to_dict())
    code = exit_code(result.decision.promote)
    return EXIT_OK if code == EXIT_KEPT and args.ok_if_kept else code


def cmd_run_local(args: argparse.Namespace) -> int:
    """The embedded default behind `make run`: no AWS, no Docker."""
    from ml.workflow import PromotionOptions, train_and_promote

    use_local_keys(args.keys_dir)
    store = existing_store(args.store, create=True)  # the embedded default: made on first use
    if store.current_pointer().pointer is None:
        say(f"no production model in {store.uri}: training one on {args.data}")
        options = PromotionOptions(report_dir=args.work_dir / "report")
        result = train_and_promote(
            args.data, args.eval_data, store, options, work_dir=args.work_dir, progress=say
        )
        if not result.decision.promoted:
            return EXIT_ERROR
    else:
        say(f"serving the production model already in {store.uri}")
    os.environ["FRAUD_STORE_URI"] = store.uri
    use_local_api_keys(args.keys_dir / "api-keys.json")
    os.environ.setdefault("FRAUD_MODEL_POLL_INTERVAL_S", "5")
    os.environ.setdefault("FRAUD_LOG_FORMAT", "console")
    return cmd_serve(args)


def use_local_api_keys(path: Path) -> None:
    """make run's API keys: made once, kept in `path` (mode 0600) across restarts, printed the
    first time. Keys already in the environment win."""
    from_environment = [name for name in API_KEY_VARIABLES if os.environ.get(name)]
    if path.exists():
        kept = json.loads(path.read_text())
        from_file = [name for name in API_KEY_VARIABLES if name not in from_environment]
        if from_file:
            say(f"{' and '.join(from_file)} from {path} (made on the first run)")
    else:
        kept = {name: secrets.token_urlsafe(24) for name in API_KEY_VARIABLES}
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(kept, handle)
        for name in API_KEY_VARIABLES:
            if not os.environ.get(name):
                say(f"generated {name}={kept[name]}  (kept in {path}; set {name} to choose)")
    for name in API_KEY_VARIABLES:
        if not os.environ.get(name):
            os.environ[name] = kept[name]
    if from_environment:
        say(f"{' and '.join(from_environment)} from the environment")


API_KEY_VARIABLES = ("FRAUD_API_KEYS", "FRAUD_ADMIN_API_KEYS")


def use_local_keys(directory: Path) -> Path:
    """Sign with, and trust, the pair in `directory` (made on first use), unless the
    environment already names a key. Returns the public key's file."""
    from ml.signing import ensure_keys

    private, public, made = ensure_keys(directory)
    if made:
        say(f"made a bundle-signing key pair in {directory} (kept for later runs)")
    os.environ.setdefault("FRAUD_SIGNING_KEY_FILE", str(private))
    os.environ.setdefault("FRAUD_TRUSTED_KEYS", str(public.resolve()))
    return public


LOCAL_HOST, LOCAL_PORT = "127.0.0.1", 8000


def bind_address(args: argparse.Namespace) -> tuple[str, int]:
    """--host/--port if given, else FRAUD_BIND if set, else 127.0.0.1:8000."""
    bind = os.environ.get("FRAUD_BIND", "")  # the service's setting (service/settings.py)
    if args.host is None and args.port is None and ":" in bind:
        host, _, port = bind.rpartition(":")
        if port.isdigit():
            return host, int(port)
    return args.host or LOCAL_HOST, args.port or LOCAL_PORT


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def cmd_serve(args: argparse.Namespace) -> int:
    """Replace this process with `python -m service`, which execs Gunicorn: signals (SIGTERM)
    then reach Gunicorn directly. A port already taken is said here, naming the setting."""
    host, port = bind_address(args)
    if port_in_use(host, port):
        say(
            f"fraudctl: port {port} on {host} is in use: choose another with PORT={port + 1} "
            f"(make run), --port {port + 1}, or FRAUD_BIND={host}:{port + 1}"
        )
        return EXIT_USAGE
    url = f"http://{host}:{port}"
    if os.environ.get("FRAUD_LOG_FORMAT", "json") == "json":  # the service's, and its default
        say(json.dumps({"event": "serving", "url": url, "docs": f"{url}/docs"}))  # one stream
    else:
        say(f"serving on {url} (docs: {url}/docs)")
    argv = [sys.executable, "-m", "service", "--host", host, "--port", str(port)]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    os.execv(sys.executable, argv)  # noqa: S606 - no shell involved
    return EXIT_ERROR  # exec only returns by raising
