"""`fraudctl promote` and `rollback`: the commands that change what production names."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ml.cli.options import (
    add_confidence,
    add_create_store,
    add_gate,
    add_prauc_gate,
    add_store,
    existing_store,
)
from ml.cli.output import EXIT_ERROR, EXIT_KEPT, EXIT_OK, EXIT_USAGE, print_json, say

if TYPE_CHECKING:
    from ml.settings import TrainingSettings
    from ml.workflow import PromotionOptions

ADMIN_KEY_VARIABLE = "FRAUD_ADMIN_API_KEY"
SERVICE_ADMIN_KEYS = "FRAUD_ADMIN_API_KEYS"


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], settings: TrainingSettings
) -> None:
    promote = commands.add_parser(
        "promote", help="promote a candidate only if its F1 beats production on the same data"
    )
    promote.add_argument("--candidate", type=Path, required=True, help="candidate bundle dir")
    promote.add_argument("--data", type=Path, required=True, help="evaluation CSV (labelled)")
    add_store(promote, settings)
    promote.add_argument(
        "--min-delta",
        type=float,
        default=settings.min_delta,
        help="required F1 gain over production (negative: deliberate; FRAUD_MIN_DELTA)",
    )
    add_confidence(promote, settings)
    promote.add_argument("--force", action="store_true", help="promote whatever the metrics")
    add_notify_option(promote)
    promote.add_argument("--dry-run", action="store_true", help="decide, change nothing")
    promote.add_argument(
        "--report-dir", type=Path, help="write report.json, report.md, pr_curve.png here"
    )
    add_gate(promote, settings)
    add_prauc_gate(promote, settings)
    add_create_store(promote)
    promote.set_defaults(handler=cmd_promote)

    rollback = commands.add_parser("rollback", help="point production at an older version")
    add_store(rollback, settings)
    rollback.add_argument("--to", metavar="VERSION", help="default: the previous production")
    add_notify_option(rollback, verb="rollback")
    rollback.set_defaults(handler=cmd_rollback)


def add_notify_option(
    parser: argparse.ArgumentParser, extra_help: str = "", verb: str = "promotion"
) -> None:
    parser.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help=f"service base URL to POST /reload to after the {verb} (repeatable; admin key in "
        f"{ADMIN_KEY_VARIABLE}){extra_help}",
    )


def admin_key_for(notify_urls: list[str], command: str) -> str | None:
    """The admin key `--notify` needs, or None (after saying why) when it is missing. The
    service's own FRAUD_ADMIN_API_KEYS works too (its first key), so one variable serves both."""
    from ml.settings import load_training_settings

    key = load_training_settings().notify_key() or ""
    if notify_urls and not key:
        say(
            f"fraudctl {command}: --notify needs the admin key in {ADMIN_KEY_VARIABLE} or "
            f"{SERVICE_ADMIN_KEYS}"
        )
        return None
    return key


def promotion_options(
    args: argparse.Namespace, notify_urls: list[str], admin_key: str
) -> PromotionOptions:
    """The promotion options of `promote` and `retrain` (which has no --force or --dry-run)."""
    from ml.workflow import PromotionOptions

    return PromotionOptions(
        min_delta=args.min_delta,
        confidence=args.confidence,
        force=getattr(args, "force", False),
        dry_run=getattr(args, "dry_run", False),
        notify_urls=tuple(notify_urls),
        admin_key=admin_key,
        report_dir=args.report_dir,
        prevalence=args.prevalence,
        allow_overlap=args.allow_overlap,
        max_prauc_drop=args.max_prauc_drop,
    )


def exit_code(promote: bool) -> int:
    return EXIT_OK if promote else EXIT_KEPT


def check_signing_key() -> None:
    """Raise now if there is no usable signing key: before the training stack is imported
    (seconds) and any data is read or model trained."""
    from ml.signing import signing_key_from_env

    signing_key_from_env()


def cmd_promote(args: argparse.Namespace) -> int:
    admin_key = admin_key_for(args.notify, "promote")
    if admin_key is None:
        return EXIT_USAGE
    if not args.candidate.is_dir():
        say(f"fraudctl promote: error: candidate bundle {args.candidate} does not exist")
        return EXIT_ERROR
    if not args.data.exists():  # a named pipe or /dev/stdin is data too
        say(f"fraudctl promote: error: evaluation data {args.data} does not exist")
        return EXIT_ERROR
    if not args.dry_run:
        check_signing_key()

    from ml.workflow import promote_candidate

    options = promotion_options(args, args.notify, admin_key)
    result = promote_candidate(
        args.candidate,
        args.data,
        existing_store(args.store, create=args.create_store),
        options,
        progress=say,
    )
    print_json(result.decision.to_dict())
    return exit_code(result.decision.promote)


def cmd_rollback(args: argparse.Namespace) -> int:
    admin_key = admin_key_for(args.notify, "rollback")
    if admin_key is None:
        return EXIT_USAGE
    check_signing_key()

    from ml.rollback import rollback
    from ml.workflow import notify_services

    pointer = rollback(existing_store(args.store), to=args.to)
    say(f"ROLLED BACK production to {pointer.version} (was {pointer.previous_version})")
    notified = notify_services(tuple(args.notify), admin_key, say)
    print_json(pointer.__dict__ | {"notify": notified})
    return EXIT_OK
