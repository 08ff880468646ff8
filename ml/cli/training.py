"""`fraudctl train` (a candidate bundle from a CSV file) and `split-data` (training rows and
evaluation rows from one labelled file, once)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ml.cli.options import add_training
from ml.cli.output import EXIT_OK, say

if TYPE_CHECKING:
    from ml.settings import TrainingSettings
    from ml.workflow import TrainingOptions


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], settings: TrainingSettings
) -> None:
    train = commands.add_parser("train", help="train a candidate bundle from a CSV file")
    train.add_argument("--data", type=Path, required=True, help="creditcard.csv, plain or .gz")
    train.add_argument("--out", type=Path, required=True, help="directory for the bundle")
    add_training(train, settings)
    train.set_defaults(handler=cmd_train)

    split = commands.add_parser(
        "split-data", help="split a labelled CSV once into training and evaluation files"
    )
    split.add_argument("--data", type=Path, required=True, help="the labelled CSV to split")
    split.add_argument("--train-out", type=Path, required=True, help="training file (.gz)")
    split.add_argument("--eval-out", type=Path, required=True, help="evaluation file (.gz)")
    split.add_argument("--eval-fraction", type=float, default=0.25, help="share of rows held out")
    split.add_argument("--seed", type=int, default=20261121, help="random seed")
    split.set_defaults(handler=cmd_split_data)


def cmd_train(args: argparse.Namespace) -> int:
    from ml.cli.output import table
    from ml.train import summary_rows
    from ml.workflow import train_candidate

    bundle = train_candidate(args.data, args.out, training_options(args), progress=say)
    print(f"metrics at prevalence {args.prevalence:g} first, then the sample's own (sample_*)")
    print(table(summary_rows(bundle.manifest), ("metric", "out-of-fold", "test")))
    print(
        f"model {bundle.manifest.model_family}, threshold {bundle.threshold:.4f}, "
        f"version {bundle.version}"
    )
    return EXIT_OK


def training_options(args: argparse.Namespace) -> TrainingOptions:
    from ml.workflow import TrainingOptions

    return TrainingOptions(
        model=args.model, seed=args.seed, prevalence=args.prevalence, objective=args.objective
    )


def cmd_split_data(args: argparse.Namespace) -> int:
    from ml.datasplit import split_sample, write_gzip

    files = split_sample(args.data, eval_fraction=args.eval_fraction, seed=args.seed)
    write_gzip(args.train_out, files.train)
    write_gzip(args.eval_out, files.evaluation)
    say(
        f"wrote {args.train_out} ({files.train_rows} rows, {files.train_frauds} frauds) and "
        f"{args.eval_out} ({files.evaluation_rows} rows, {files.evaluation_frauds} frauds)"
    )
    return EXIT_OK
