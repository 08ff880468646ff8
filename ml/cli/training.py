"""`fraudctl train`: a candidate bundle from a CSV file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ml.cli.output import EXIT_OK, say
from ml.train import DEFAULT_MODEL, MODEL_FAMILIES


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = commands.add_parser("train", help="train a candidate bundle from a CSV file")
    train.add_argument("--data", type=Path, required=True, help="creditcard.csv, plain or .gz")
    train.add_argument("--out", type=Path, required=True, help="directory for the bundle")
    train.add_argument("--model", choices=sorted(MODEL_FAMILIES), default=DEFAULT_MODEL)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(handler=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ml.cli.output import table
    from ml.train import summary_rows
    from ml.workflow import train_candidate

    bundle = train_candidate(args.data, args.out, model=args.model, seed=args.seed, progress=say)
    print(table(summary_rows(bundle.manifest), ("metric", "validation", "test")))
    print(
        f"model {bundle.manifest.model_family}, threshold {bundle.threshold:.4f}, "
        f"version {bundle.version}"
    )
    return EXIT_OK
