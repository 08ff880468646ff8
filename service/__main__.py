"""`python -m service [--host H --port P] [--workers N]`: check the settings, then exec
Gunicorn with the one serving command (`service.serve.SERVE_ARGV`). `fraudctl serve` runs this.
Anything not given comes from `Settings` (FRAUD_BIND, WEB_CONCURRENCY and their defaults)."""

from __future__ import annotations

import argparse
import os
import sys

from service.serve import exec_gunicorn
from service.settings import SettingsError, load_settings


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", help="with --port: sets FRAUD_BIND")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, help="sets WEB_CONCURRENCY")
    args = parser.parse_args()
    if (args.host is None) != (args.port is None):
        parser.error("--host and --port go together")
    if args.host is not None:
        os.environ["FRAUD_BIND"] = f"{args.host}:{args.port}"
    if args.workers is not None:
        os.environ["WEB_CONCURRENCY"] = str(args.workers)
    try:
        load_settings()  # fail here, naming the variable, rather than in every worker
    except SettingsError as exc:
        sys.stderr.write(f"fraudctl serve: {exc}\n")
        return 2
    exec_gunicorn()
    return 1  # exec only returns by raising


if __name__ == "__main__":
    sys.exit(main())
