"""`fraudctl retrain`: train, then compare-and-promote, configured by `FRAUD_*` settings (the
training image's job)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ml.cli.local import use_local_keys
from ml.cli.options import (
    add_confidence,
    add_create_store,
    add_prauc_gate,
    add_store,
    add_training,
    existing_store,
)
from ml.cli.output import (
    EXIT_KEPT,
    EXIT_OK,
    EXIT_USAGE,
    print_json,
    say,
)
from ml.cli.promotion import (
    add_notify_option,
    admin_key_for,
    check_signing_key,
    exit_code,
    promotion_options,
)
from ml.cli.training import training_options

if TYPE_CHECKING:
    from ml.settings import TrainingSettings


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], settings: TrainingSettings
) -> None:
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
    add_store(retrain, settings)
    add_training(retrain, settings)
    retrain.add_argument(
        "--min-delta",
        type=float,
        default=settings.min_delta,
        help="required F1 gain over production (FRAUD_MIN_DELTA)",
    )
    add_confidence(retrain, settings)
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


def cmd_retrain(args: argparse.Namespace) -> int:
    """Train, then compare-and-promote: the training image's default job."""
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
    check_signing_key()  # before the training stack loads and a model trains
    store = existing_store(args.store, create=args.create_store)

    import tempfile

    from ml.remote import local_copy
    from ml.workflow import train_and_promote

    with tempfile.TemporaryDirectory(prefix="fraud-retrain-") as tmp:
        train_data = local_copy(args.data, Path(tmp) / "train.csv")
        eval_data = local_copy(args.eval_data, Path(tmp) / "eval.csv")
        result = train_and_promote(
            train_data,
            eval_data,
            store,
            promotion_options(args, notify, admin_key),
            training_options(args),
            progress=say,
        )
    print_json(result.decision.to_dict())
    code = exit_code(result.decision.promote)
    return EXIT_OK if code == EXIT_KEPT and args.ok_if_kept else code
