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


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from ml.bundle import load_bundle, write_bundle
    from ml.data import load_dataset
    from ml.train import summary_rows, train_bundle

    _say(f"reading {args.data}")
    dataset = load_dataset(args.data)
    files = train_bundle(dataset, model_name=args.model, seed=args.seed, progress=_say)
    bundle = load_bundle(files)  # the candidate must pass the same checks the service applies
    write_bundle(args.out, files)
    _say(f"wrote candidate bundle {bundle.version} to {args.out}")
    print(table(summary_rows(bundle.manifest), ("metric", "validation", "test")))
    print(f"model {bundle.manifest.model_family}, threshold {bundle.threshold:.4f}, "
          f"version {bundle.version}")
    return EXIT_OK


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

    serve = commands.add_parser(
        "serve", help="serve the production model (Gunicorn + Uvicorn workers; FRAUD_* settings)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=2)
    serve.set_defaults(handler=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ml.bundle import BundleError
    from ml.store import StoreError

    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (BundleError, StoreError, ValueError, OSError) as exc:
        # Expected failures: one clear line, no traceback. Anything else is a bug and shows one.
        _say(f"fraudctl {args.command}: error: {exc}")
        return EXIT_ERROR


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
