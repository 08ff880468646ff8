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
from typing import TYPE_CHECKING

from ml.cli import inspection, jobs, live, local, promotion, serving, training, trust
from ml.cli.output import EXIT_ERROR, EXIT_USAGE, say

if TYPE_CHECKING:
    from ml.settings import TrainingSettings


def build_parser(settings: TrainingSettings | None = None) -> argparse.ArgumentParser:
    """The parser, its defaults from the `FRAUD_*` settings (`ml.settings`)."""
    from ml.settings import load_training_settings

    settings = settings or load_training_settings()
    parser = argparse.ArgumentParser(prog="fraudctl", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"fraudctl {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    training.add_parser(commands, settings)
    promotion.add_parsers(commands, settings)
    inspection.add_parsers(commands, settings)
    live.add_parsers(commands, settings)
    jobs.add_parsers(commands, settings)
    local.add_parser(commands, settings)
    serving.add_parser(commands)
    trust.add_parsers(commands, settings)
    _explain_each_command(commands)
    return parser


# What each command's exit status means, at the foot of its --help.
COMMON_EXITS = "0 done, 1 failed (the message says why), 2 bad usage or input"
EXITS = {
    "promote": f"{COMMON_EXITS}, 3 production kept (the candidate did not beat it)",
    "retrain": f"{COMMON_EXITS}, 3 production kept (0 with --ok-if-kept)",
    "serve": "as Gunicorn's once it runs; 2 bad settings (named) or a port in use",
    "run-local": "as serve's; 1 or 2 if training or promotion failed first",
}


class _HelpWithDefaults(argparse.HelpFormatter):
    """Adds an option's default to its help, unless there is none worth saying or the help
    already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        nothing_to_say = (
            default is None or default is False or default == [] or default is argparse.SUPPRESS
        )
        if not action.option_strings or nothing_to_say:  # (0.0 == False: hence `is`)
            return text
        if "default" in text:
            return text
        return f"{text} (default: {default})"


def _explain_each_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Every sub-command's --help opens with its purpose, shows each option's default, and
    ends with what its exit status means."""
    purposes = {action.dest: action.help for action in commands._choices_actions}
    for name, sub in commands.choices.items():
        sub.description = sub.description or purposes.get(name)
        sub.formatter_class = _HelpWithDefaults
        sub.epilog = f"exit status: {EXITS.get(name, COMMON_EXITS)}"
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                _explain_each_command(action)  # `keys generate`


def expected_errors() -> tuple[type[Exception], ...]:
    """The failures a command reports in one line. Imported only when one is raised (an
    except clause is evaluated then): `fraudctl serve` starts without numpy or cryptography."""
    from ml.errors import PromotionError
    from ml.runtime.manifest import BundleError
    from ml.runtime.store import StoreError

    return (BundleError, StoreError, PromotionError, ValueError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["serve"]:
        return serving.serve_main(arguments[1:], EXITS["serve"])
    from ml.settings import TrainingSettingsError, load_training_settings

    try:
        settings = load_training_settings()
    except TrainingSettingsError as exc:  # before any work: nothing slow has started
        say(f"fraudctl: {exc}")
        return EXIT_USAGE
    args = build_parser(settings).parse_args(arguments)
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
