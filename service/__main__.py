"""`python -m service [--host H] [--port P] [--workers N]`: check the settings, then exec
Gunicorn with the one serving command (`service.serve.SERVE_ARGV`). `fraudctl serve` runs this."""

from __future__ import annotations

import argparse
import sys

from service.serve import exec_gunicorn
from service.settings import SettingsError, load_settings


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    try:
        load_settings()  # fail here, naming the variable, rather than in every worker
    except SettingsError as exc:
        sys.stderr.write(f"fraudctl serve: {exc}\n")
        return 2
    exec_gunicorn(args.host, args.port, args.workers)
    return 1  # exec only returns by raising


if __name__ == "__main__":
    sys.exit(main())
