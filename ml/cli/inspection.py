"""`fraudctl history` and `evaluate`: read a store or a bundle, change nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

from ml.cli.output import EXIT_ERROR, EXIT_OK, print_json, say, table


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser("history", help="versions, which is live, promotion log")
    history.add_argument("--store", required=True)
    history.add_argument("--json", action="store_true")
    history.set_defaults(handler=cmd_history)

    evaluate = commands.add_parser("evaluate", help="metrics of a bundle on labelled data")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", type=Path, help="a bundle directory")
    source.add_argument("--store", help="a store; production unless --version")
    evaluate.add_argument("--version", help="with --store: a version other than production")
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=cmd_evaluate)


def cmd_history(args: argparse.Namespace) -> int:
    from ml.history import store_history
    from ml.runtime.store import open_store

    history = store_history(open_store(args.store))
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
    header = ("version (* live)", "model", "created", "test F1 (training)", "PR-AUC (training)")
    print(table(versions, header))
    print()
    log = [
        (
            p.promoted_at,
            p.action,
            p.version,
            p.previous_version or "-",
            p.promoted_by,
            str(p.details.get("reason", "")),
        )
        for p in history.log
    ]
    print(table(log, ("when", "action", "version", "previous", "by", "reason")))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ml.data import load_dataset
    from ml.evaluate import REPORTED_METRICS
    from ml.promote import evaluate_bundle
    from ml.runtime.bundle import load_bundle_dir, load_version
    from ml.runtime.store import open_store

    if args.bundle is not None:
        bundle = load_bundle_dir(args.bundle)
    else:
        store = open_store(args.store)
        pointer = store.current_pointer().pointer
        version = args.version or (pointer.version if pointer else None)
        if version is None:
            say(f"fraudctl evaluate: {store.uri} has no production model; pass --version")
            return EXIT_ERROR
        expected = pointer.manifest_sha256 if pointer and pointer.version == version else None
        bundle = load_version(store, version, expected_manifest_sha256=expected)
    data = load_dataset(args.data)
    result = evaluate_bundle(bundle, data)
    if args.json:
        print_json(
            {"version": bundle.version, "data": data.fingerprint(), "metrics": result.metrics}
        )
        return EXIT_OK
    m = result.metrics
    keys = (*REPORTED_METRICS, "threshold")
    print(f"bundle {bundle.version} on {data.path} ({data.n_rows} rows, {data.n_fraud} frauds)")
    print(table([(k, f"{m[k]:.4f}") for k in keys], ("metric", "value")))
    return EXIT_OK
