"""`fraudctl`: train, evaluate, promote, roll back and serve.

Each sub-command imports what it needs when it runs, so `fraudctl serve` never loads the
training stack (pandas, matplotlib).

Exit status: 0 success (promoted), 1 error, 2 usage error, 3 production kept (not better).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_KEPT = 3


def _say(message: str) -> None:
    """Progress and decisions go to stderr; machine-readable results go to stdout."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _env(name: str, default: str) -> str:
    import os

    return os.environ.get(name) or default


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from ml.bundle import load_bundle, write_bundle
    from ml.data import load_dataset
    from ml.train import DEFAULT_MODEL, summary_rows, train_bundle

    _say(f"reading {args.data}")
    dataset = load_dataset(args.data)
    model = args.model or DEFAULT_MODEL
    files = train_bundle(dataset, model_name=model, seed=args.seed, progress=_say)
    bundle = load_bundle(files)  # the candidate must pass the same checks the service applies
    write_bundle(args.out, files)
    _say(f"wrote candidate bundle {bundle.version} to {args.out}")
    print(table(summary_rows(bundle.manifest), ("metric", "validation", "test")))
    print(
        f"model {bundle.manifest.model_family}, threshold {bundle.threshold:.4f}, "
        f"version {bundle.version}"
    )
    return EXIT_OK


def _print_json(payload: object) -> None:
    import json

    print(json.dumps(payload, indent=2, sort_keys=True))


def cmd_promote(args: argparse.Namespace) -> int:
    import os

    from ml.notify import notify_reload
    from ml.promote import promote
    from ml.report import write_report
    from ml.store import open_store

    admin_key = os.environ.get("FRAUD_ADMIN_API_KEY", "")
    if args.notify and not admin_key:
        _say("fraudctl promote: --notify needs the admin key in FRAUD_ADMIN_API_KEY")
        return EXIT_USAGE
    if not args.candidate.is_dir():
        _say(f"fraudctl promote: error: candidate bundle {args.candidate} does not exist")
        return EXIT_ERROR
    store = open_store(args.store)
    result = promote(
        args.candidate,
        args.data,
        store,
        min_delta=args.min_delta,
        force=args.force,
        dry_run=args.dry_run,
    )
    decision = result.decision
    if decision.promoted:
        _say(f"PROMOTED {decision.candidate['version']} ({decision.action}): {decision.reason}")
        for url in args.notify:
            notified = notify_reload(url, admin_key)
            decision.notify.append(notified)
            if notified["ok"]:
                _say(f"notified {notified['url']}: {notified['response']}")
            else:
                _say(
                    f"WARNING: notify {notified['url']} failed after {notified['attempts']} "
                    f"attempt(s): {notified['error']} (services will still pick the model up "
                    "when they next poll)"
                )
    elif decision.promote:
        _say(f"DRY RUN: would promote {decision.candidate['version']}: {decision.reason}")
    else:
        _say(f"KEPT production: {decision.reason}")
    if args.report_dir is not None:
        paths = write_report(args.report_dir, result)
        _say(f"report: {paths['markdown']}, {paths['json']}, {paths['pr_curve']}")
    _print_json(decision.to_dict())
    return EXIT_OK if decision.promote else EXIT_KEPT


def cmd_rollback(args: argparse.Namespace) -> int:
    from ml.promote import rollback
    from ml.store import open_store

    pointer = rollback(open_store(args.store), to=args.to)
    _say(f"ROLLED BACK production to {pointer.version} (was {pointer.previous_version})")
    _print_json(pointer.__dict__)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from ml.bundle import MANIFEST_FILE, Manifest
    from ml.store import list_versions, open_store, read_history, version_key

    store = open_store(args.store)
    live = store.current_pointer().pointer
    versions = []
    for version in list_versions(store):
        manifest = Manifest.from_json(store.get(version_key(version, MANIFEST_FILE)))
        versions.append(
            {
                "version": version,
                "live": live is not None and live.version == version,
                "model_family": manifest.model_family,
                "created_at": manifest.created_at,
                "threshold": manifest.threshold,
                "training_test_f1": manifest.metrics["test"]["f1"],
                "training_test_pr_auc": manifest.metrics["test"]["pr_auc"],
            }
        )
    log = [p.__dict__ for p in read_history(store)]
    if args.json:
        _print_json(
            {
                "store": store.uri,
                "live": live.version if live else None,
                "versions": versions,
                "log": log,
            }
        )
        return EXIT_OK
    print(f"store {store.uri}; live: {live.version if live else 'nothing promoted yet'}")
    print()
    print(
        table(
            [
                (
                    ("* " if v["live"] else "  ") + v["version"],
                    v["model_family"],
                    v["created_at"],
                    f"{v['training_test_f1']:.4f}",
                    f"{v['training_test_pr_auc']:.4f}",
                )
                for v in versions
            ],
            ("version (* live)", "model", "created", "test F1 (training)", "PR-AUC (training)"),
        )
    )
    print()
    print(
        table(
            [
                (
                    e["promoted_at"],
                    e["action"],
                    e["version"],
                    e["previous_version"] or "-",
                    e["promoted_by"],
                    e["details"].get("reason", ""),
                )
                for e in log
            ],
            ("when", "action", "version", "previous", "by", "reason"),
        )
    )
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ml.bundle import load_bundle_dir, load_version
    from ml.data import load_dataset
    from ml.evaluate import REPORTED_METRICS
    from ml.promote import evaluate_bundle
    from ml.store import open_store

    if args.bundle is not None:
        bundle = load_bundle_dir(args.bundle)
    else:
        store = open_store(args.store)
        pointer = store.current_pointer().pointer
        version = args.version or (pointer.version if pointer else None)
        if version is None:
            _say(f"fraudctl evaluate: {store.uri} has no production model; pass --version")
            return EXIT_ERROR
        expected = pointer.manifest_sha256 if pointer and pointer.version == version else None
        bundle = load_version(store, version, expected_manifest_sha256=expected)
    data = load_dataset(args.data)
    result = evaluate_bundle(bundle, data)
    payload = {"version": bundle.version, "data": data.fingerprint(), "metrics": result.metrics}
    if args.json:
        _print_json(payload)
    else:
        m = result.metrics
        keys = (*REPORTED_METRICS, "threshold")
        print(f"bundle {bundle.version} on {data.path} ({data.n_rows} rows, {data.n_fraud} frauds)")
        print(table([(k, f"{m[k]:.4f}") for k in keys], ("metric", "value")))
    return EXIT_OK


def cmd_retrain(args: argparse.Namespace) -> int:
    """Train, then compare-and-promote: the training image's default job."""
    import os
    import tempfile

    from ml.remote import local_copy

    with tempfile.TemporaryDirectory(prefix="fraud-retrain-") as tmp:
        train_data = local_copy(args.data, Path(tmp) / "train.csv")
        eval_data = (
            local_copy(args.eval_data, Path(tmp) / "eval.csv") if args.eval_data else train_data
        )
        candidate = Path(tmp) / "candidate"
        train_args = argparse.Namespace(
            data=train_data, out=candidate, model=args.model, seed=args.seed
        )
        if cmd_train(train_args) != EXIT_OK:
            return EXIT_ERROR
        notify = [u for u in os.environ.get("FRAUD_NOTIFY_URLS", "").split(",") if u.strip()]
        promote_args = argparse.Namespace(
            candidate=candidate,
            data=eval_data,
            store=args.store,
            min_delta=args.min_delta,
            force=False,
            dry_run=False,
            notify=[*notify, *args.notify],
            report_dir=args.report_dir,
        )
        code = cmd_promote(promote_args)
    if code == EXIT_KEPT and args.ok_if_kept:
        return EXIT_OK
    return code


def cmd_run_local(args: argparse.Namespace) -> int:
    """The embedded default behind `make run`: no AWS, no Docker."""
    import os
    import secrets

    from ml.store import open_store

    store = open_store(args.store)
    if store.current_pointer().pointer is None:
        _say(f"no production model in {store.uri}: training one on {args.data}")
        candidate = args.work_dir / "candidate"
        if cmd_train(argparse.Namespace(data=args.data, out=candidate, model=None, seed=0)) != 0:
            return EXIT_ERROR
        promote_args = argparse.Namespace(
            candidate=candidate,
            data=args.data,
            store=args.store,
            min_delta=0.0,
            force=False,
            dry_run=False,
            notify=[],
            report_dir=args.work_dir / "report",
        )
        if cmd_promote(promote_args) != EXIT_OK:
            return EXIT_ERROR
    else:
        _say(f"serving the production model already in {store.uri}")
    os.environ["FRAUD_STORE_URI"] = store.uri
    for variable in ("FRAUD_API_KEYS", "FRAUD_ADMIN_API_KEYS"):
        if not os.environ.get(variable):
            os.environ[variable] = secrets.token_urlsafe(24)
            _say(f"generated {variable}={os.environ[variable]}  (shown once; set it to choose)")
    os.environ.setdefault("FRAUD_MODEL_POLL_INTERVAL_S", "5")
    os.environ.setdefault("FRAUD_LOG_FORMAT", "console")
    _say(f"serving on http://{args.host}:{args.port} (docs: http://{args.host}:{args.port}/docs)")
    return cmd_serve(argparse.Namespace(host=args.host, port=args.port, workers=args.workers))


def cmd_serve(args: argparse.Namespace) -> int:
    from service.serve import exec_gunicorn
    from service.settings import SettingsError, load_settings

    try:
        load_settings()  # fail here, naming the variable, rather than in every worker
    except SettingsError as exc:
        _say(f"fraudctl serve: {exc}")
        return EXIT_USAGE
    exec_gunicorn(args.host, args.port, args.workers)
    return EXIT_ERROR  # exec only returns by raising


def build_parser() -> argparse.ArgumentParser:
    from ml.train import DEFAULT_MODEL, MODEL_FAMILIES

    parser = argparse.ArgumentParser(prog="fraudctl", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a candidate bundle from a CSV file")
    train.add_argument("--data", type=Path, required=True, help="creditcard.csv, plain or .gz")
    train.add_argument("--out", type=Path, required=True, help="directory for the bundle")
    train.add_argument("--model", choices=sorted(MODEL_FAMILIES), default=DEFAULT_MODEL)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(handler=cmd_train)

    promote = commands.add_parser(
        "promote", help="promote a candidate only if its F1 beats production on the same data"
    )
    promote.add_argument("--candidate", type=Path, required=True, help="candidate bundle dir")
    promote.add_argument("--data", type=Path, required=True, help="evaluation CSV (labelled)")
    promote.add_argument("--store", required=True, help="s3://bucket/prefix or a directory")
    promote.add_argument(
        "--min-delta",
        type=float,
        default=0.0,
        help="required F1 gain over production (negative: deliberate)",
    )
    promote.add_argument("--force", action="store_true", help="promote whatever the metrics")
    promote.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="service base URL to POST /reload to after promotion (repeatable)",
    )
    promote.add_argument("--dry-run", action="store_true", help="decide, change nothing")
    promote.add_argument(
        "--report-dir", type=Path, help="write report.json, report.md, pr_curve.png here"
    )
    promote.set_defaults(handler=cmd_promote)

    rollback = commands.add_parser("rollback", help="point production at an older version")
    rollback.add_argument("--store", required=True)
    rollback.add_argument("--to", metavar="VERSION", help="default: the previous production")
    rollback.set_defaults(handler=cmd_rollback)

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

    serve = commands.add_parser(
        "serve", help="serve the production model (Gunicorn + Uvicorn workers; FRAUD_* settings)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=2)
    serve.set_defaults(handler=cmd_serve)

    retrain = commands.add_parser(
        "retrain",
        help="train, then compare-and-promote (the training image's job; FRAUD_* defaults)",
    )
    retrain.add_argument(
        "--data",
        default=_env("FRAUD_TRAIN_DATA", "data/creditcard_dev.csv.gz"),
        help="training CSV: a path or s3://bucket/key (FRAUD_TRAIN_DATA)",
    )
    retrain.add_argument(
        "--eval-data",
        default=_env("FRAUD_EVAL_DATA", ""),
        help="evaluation CSV for the comparison (FRAUD_EVAL_DATA); default: the training data",
    )
    retrain.add_argument(
        "--store",
        default=_env("FRAUD_STORE_URI", ""),
        required=not _env("FRAUD_STORE_URI", ""),
        help="(FRAUD_STORE_URI)",
    )
    retrain.add_argument("--model", choices=sorted(MODEL_FAMILIES), default=DEFAULT_MODEL)
    retrain.add_argument("--seed", type=int, default=int(_env("FRAUD_SEED", "0")))
    retrain.add_argument("--min-delta", type=float, default=float(_env("FRAUD_MIN_DELTA", "0")))
    retrain.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="also FRAUD_NOTIFY_URLS, comma-separated",
    )
    retrain.add_argument(
        "--report-dir",
        type=Path,
        default=Path(_env("FRAUD_REPORT_DIR", "")) if _env("FRAUD_REPORT_DIR", "") else None,
    )
    retrain.add_argument(
        "--ok-if-kept", action="store_true", help="exit 0 instead of 3 when production is kept"
    )
    retrain.set_defaults(handler=cmd_retrain)

    local = commands.add_parser(
        "run-local",
        help="train and promote into a local store if it has no production model, then serve",
    )
    local.add_argument("--store", default=".local/store")
    local.add_argument("--data", type=Path, default=Path("data/creditcard_dev.csv.gz"))
    local.add_argument("--work-dir", type=Path, default=Path(".local/work"))
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--port", type=int, default=8000)
    local.add_argument("--workers", type=int, default=2)
    local.set_defaults(handler=cmd_run_local)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ml.bundle import BundleError
    from ml.errors import PromotionError
    from ml.store import StoreError

    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (BundleError, StoreError, PromotionError, ValueError, OSError) as exc:
        # Expected failures: one clear line, no traceback. Anything else is a bug and shows one.
        _say(f"fraudctl {args.command}: error: {exc}")
        return EXIT_ERROR


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
