"""`fraudctl run-local`, the embedded default behind `make run`: a local store, a signing key
pair and API keys made on first use under .local/, a model trained and promoted if none is
live, then the service on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from ml.choices import EVAL_DATA, TRAIN_DATA
from ml.cli.options import existing_store
from ml.cli.output import EXIT_ERROR, say
from ml.cli.serving import add_serving_options, cmd_serve

if TYPE_CHECKING:
    from ml.settings import TrainingSettings


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], settings: TrainingSettings
) -> None:
    # Under the directory the other commands default to after a run (FRAUD_LOCAL_DIR).
    here = settings.local_dir
    local = commands.add_parser(
        "run-local",
        help="train and promote into a local store if it has no production model, then serve",
    )
    local.add_argument("--store", default=str(here / "store"), help="the local store")
    local.add_argument("--data", type=Path, default=Path(TRAIN_DATA), help="training CSV")
    local.add_argument(
        "--eval-data", type=Path, default=Path(EVAL_DATA), help="evaluation CSV for promotion"
    )
    local.add_argument(
        "--work-dir", type=Path, default=here / "work", help="candidate bundles go here"
    )
    local.add_argument(
        "--keys-dir",
        type=Path,
        default=here / "keys",
        help="the signing key pair, made on first use: promotions sign, the service trusts it",
    )
    add_serving_options(local)
    local.set_defaults(handler=cmd_run_local, local_dir=here)


def cmd_run_local(args: argparse.Namespace) -> int:
    """The embedded default behind `make run`: no AWS, no Docker."""
    from ml.workflow import PromotionOptions, train_and_promote

    use_local_keys(args.keys_dir)
    store = existing_store(args.store, create=True)  # the embedded default: made on first use
    if store.current_pointer().pointer is None:
        say(f"no production model in {store.uri}: training one on {args.data}")
        options = PromotionOptions(report_dir=args.work_dir / "report")
        # One OpenMP thread: on the committed sample it costs 0.3 s on an idle 2-core machine
        # (1.4 -> 1.7 s), and saves far more on a busy one, where the threads' spin-waits
        # collapse (both cores busy: 6.2 -> 2.8 s; under a benchmark's load: 27 s with two).
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
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
    # The decision log, as in compose and ECS: rows reach the store's captures/ within ~2 s,
    # and a spool left by an interrupted run is shipped by the next.
    os.environ.setdefault("FRAUD_CAPTURE", "1")
    os.environ.setdefault("FRAUD_CAPTURE_ROTATE_S", "1")
    os.environ.setdefault("FRAUD_CAPTURE_SPOOL_DIR", str(args.local_dir / "capture-spool"))
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
