"""`fraudctl`: train, evaluate, promote, roll back and serve.

One module per concern (training, promotion, inspection, jobs, trust); the work itself is in library
functions (`ml.workflow`, `ml.promote`, `ml.history`). Each sub-command imports what it needs
when it runs, so `fraudctl serve` never loads the training stack (pandas, matplotlib).

Exit status: 0 success (promoted), 1 error, 2 usage error, 3 production kept (not better).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence

from ml.cli import inspection, jobs, promotion, training, trust
from ml.cli.output import EXIT_ERROR, say


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraudctl", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"fraudctl {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    training.add_parser(commands)
    promotion.add_parsers(commands)
    inspection.add_parsers(commands)
    jobs.add_parsers(commands)
    trust.add_parsers(commands)
    return parser


def expected_errors() -> tuple[type[Exception], ...]:
    """The failures a command reports in one line. Imported only when one is raised (an
    except clause is evaluated then): `fraudctl serve` starts without numpy or cryptography."""
    from ml.errors import PromotionError
    from ml.runtime.bundle import BundleError
    from ml.runtime.store import StoreError

    return (BundleError, StoreError, PromotionError, ValueError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except expected_errors() as exc:
        # Expected failures: one clear line, no traceback. Anything else is a bug and shows one.
        say(f"fraudctl {args.command}: error: {exc}")
        return EXIT_ERROR


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fraud-scoring")
    except PackageNotFoundError:
        return "(not installed)"


def run() -> None:
    """Console-script entry point. A closed pipe (`fraudctl history | head -1`) ends it
    quietly, as it ends any Unix tool, instead of an error about a broken pipe."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
