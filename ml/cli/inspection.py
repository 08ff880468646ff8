"""`fraudctl history` and `evaluate`: read a store or a bundle, change nothing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ml.cli.live import add_live_options, cmd_evaluate_live
from ml.cli.options import add_gate, add_store, existing_store
from ml.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE, print_json, say, table

if TYPE_CHECKING:
    from ml.settings import TrainingSettings


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], settings: TrainingSettings
) -> None:
    history = commands.add_parser("history", help="versions, which is live, promotion log")
    add_store(history, settings)
    history.add_argument("--json", action="store_true", help="print JSON, not a table")
    history.set_defaults(handler=cmd_history)

    evaluate = commands.add_parser(
        "evaluate", help="metrics of a bundle on labelled data, or (--live) of the decision log"
    )
    source = evaluate.add_mutually_exclusive_group(required=settings.store_uri is None)
    source.add_argument("--bundle", type=Path, help="a bundle directory")
    source.add_argument(
        "--store",
        default=settings.store_uri,
        help="a store; production unless --version (FRAUD_STORE_URI; after `make run`, its "
        ".local/store)",
    )
    evaluate.add_argument("--version", help="with --store: a version other than production")
    evaluate.add_argument("--data", type=Path, help="labelled CSV to evaluate on (not with --live)")
    add_gate(evaluate, settings)
    evaluate.add_argument("--json", action="store_true", help="print JSON, not a summary")
    add_live_options(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)


def cmd_history(args: argparse.Namespace) -> int:
    from ml.history import store_history

    history = store_history(existing_store(args.store))
    if args.json:
        print_json(history.to_dict())
        return EXIT_OK
    print(f"store {history.store}; live: {history.live or 'nothing promoted yet'}")
    print()
    versions = [
        (
            ("* " if v.live else "  ") + v.version,
            v.model_family,
            v.created_at,
            f"{v.training_test_f1:.4f}",
            f"{v.training_test_pr_auc:.4f}",
        )
        for v in history.versions
    ]
    # Training metrics are weighted to each bundle's prevalence (older bundles: the sample's).
    print(
        table(
            versions,
            ("version (* live)", "model", "created", "test F1 (training)", "PR-AUC (training)"),
        )
    )
    print()
    log = [
        (
            p.promoted_at,
            p.action.upper() if p.action == "keep" else p.action,
            p.version,
            p.previous_version or "-",
            _f1s(p.details),
            p.promoted_by,
            str(p.details.get("reason", "")),
        )
        for p in history.log
    ]
    print(
        table(
            log,
            ("when", "action", "version", "production before", "F1 cand / prod", "by", "reason"),
        )
    )
    if history.unreadable:
        say(f"{history.unreadable} record(s) of the log are not valid records and are not shown")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.live:
        return cmd_evaluate_live(args)
    if args.data is None:
        say("fraudctl evaluate: pass --data (labelled rows), or --live for the decision log")
        return EXIT_USAGE
    from ml.data import load_dataset
    from ml.evaluate import REPORTED_METRICS
    from ml.promote import check_overlap, evaluate_bundle
    from ml.runtime.bundle import load_bundle_dir, load_version

    if args.bundle is not None:
        bundle = load_bundle_dir(args.bundle)
    else:
        store = existing_store(args.store)
        pointer = store.current_pointer().pointer
        version = args.version or (pointer.version if pointer else None)
        if version is None:
            say(f"fraudctl evaluate: {store.uri} has no production model; pass --version")
            return EXIT_ERROR
        expected = pointer.manifest_sha256 if pointer and pointer.version == version else None
        bundle = load_version(store, version, expected_manifest_sha256=expected)
    data = load_dataset(args.data)
    overlap = check_overlap([bundle], data, allow=args.allow_overlap)
    result = evaluate_bundle(bundle, data, args.prevalence)
    if args.json:
        payload = {"version": bundle.version, "data": data.fingerprint(), "overlap": overlap}
        print_json(payload | {"metrics": result.metrics})
        return EXIT_OK
    m = result.metrics
    keys = (*REPORTED_METRICS, "threshold")
    print(f"bundle {bundle.version} on {data.path} ({data.n_rows} rows, {data.n_fraud} frauds)")
    print(f"metrics at prevalence {args.prevalence:g} first; sample_*: at the sample's own")
    print(table([(k, f"{m[k]:.4f}") for k in keys], ("metric", "value")))
    return EXIT_OK


def _f1s(details: dict[str, object]) -> str:
    candidate, production = details.get("candidate_f1"), details.get("production_f1")
    if not isinstance(candidate, float):
        return "-"
    return f"{candidate:.4f} / " + (f"{production:.4f}" if isinstance(production, float) else "-")
